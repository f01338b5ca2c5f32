"""The redis+sentinel:// URL form: parsed, checked in one sentence, its password never printed."""

import pytest

from sovren_db.core.config import load_settings
from sovren_db.core.errors import ConfigError
from sovren_db.core.urls import redact
from sovren_db.redis.sentinel import parse


def test_every_part_is_read():
    spec = parse("redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b:26380/sovren/2?role=replica")
    assert spec.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380))
    assert (spec.master, spec.db, spec.password, spec.replica) == ("sovren", 2, "s@cret", True)
    assert parse("redis+sentinel://h:1/m").password is None and parse("redis+sentinel://h:1/m").db == 0


@pytest.mark.parametrize("url, problem", [
    ("redis+sentinel://:pw@host/m", "without HOST:PORT"),
    ("redis+sentinel://:pw@h:1", "must name the master"),
    ("redis+sentinel://:pw@h:1/m/x", "must name the master"),
    ("redis+sentinel://:pw@h:1/m?role=leader", "role='leader'"),
])
def test_bad_urls_are_one_sentence_without_the_password(url, problem):
    with pytest.raises(ConfigError) as caught:
        parse(url)
    assert problem in str(caught.value) and "pw" not in str(caught.value)
    assert str(caught.value).startswith("REDIS_URL 'redis+sentinel://:***@")


def test_config_accepts_the_form_and_redact_hides_the_password(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.sovren-db]\n")
    url = "redis+sentinel://:pw@a:1,b:2/sovren"
    settings = load_settings(tmp_path, environ={"REDIS_URL": url})
    assert settings.redis_url == url
    assert redact(url) == "redis+sentinel://:***@a:1,b:2/sovren"
