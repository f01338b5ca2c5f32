"""tenant isolation everywhere, card data refused, foreign key indexes

Revision ID: 913784513d33
Revises: b0423f0c320c
Create Date: 2026-12-05 13:01:41.538796

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '913784513d33'
down_revision: Union[str, Sequence[str], None] = 'b0423f0c320c'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TENANT_BODY = '''
    SELECT CASE WHEN pg_catalog.current_setting('app.user_id', true)
                     OPERATOR(pg_catalog.~*) '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN pg_catalog.current_setting('app.user_id', true)::pg_catalog.uuid END
    '''

# Redis families whose values name the user in a field (subject_field): (before, after) this revision.
SUBJECT_FIELD_FAMILIES = [({'name': 'analytics_cache',
   'pattern': 'cache:analytics:{query_hash}',
   'type': 'string',
   'ttl': {'policy': 'required', 'min': 30, 'max': 3600, 'default': 900},
   'pii': False,
   'subject': None,
   'owner': 'analytics',
   'description': 'Result of an analytics query (serialised rows), keyed by the hash of the normalised '
                  'query.',
   'max_elements': None,
   'max_bytes': 1048576,
   'hash_tag': None,
   'groups': [],
   'foreign': False},
  {'name': 'analytics_cache',
   'pattern': 'cache:analytics:{query_hash}',
   'type': 'string',
   'ttl': {'policy': 'required', 'min': 30, 'max': 3600, 'default': 900},
   'pii': True,
   'subject': 'user_id',
   'owner': 'analytics',
   'description': 'Result of an analytics query (serialised rows), keyed by the hash of the normalised '
                  'query.',
   'max_elements': None,
   'max_bytes': 1048576,
   'hash_tag': None,
   'groups': [],
   'foreign': False,
   'subject_field': 'userId'}),
 ({'name': 'executive_cache',
   'pattern': 'cache:executive:{executive_id}',
   'type': 'hash',
   'ttl': {'policy': 'required', 'min': None, 'max': 3600, 'default': 600},
   'pii': False,
   'subject': None,
   'owner': 'executives',
   'description': 'An executive persona read from MongoDB (role, name, skills, voice profile, active).',
   'max_elements': 64,
   'max_bytes': None,
   'hash_tag': None,
   'groups': [],
   'foreign': False},
  {'name': 'executive_cache',
   'pattern': 'cache:executive:{executive_id}',
   'type': 'hash',
   'ttl': {'policy': 'required', 'min': None, 'max': 3600, 'default': 600},
   'pii': True,
   'subject': 'user_id',
   'owner': 'executives',
   'description': 'An executive persona read from MongoDB (role, name, skills, voice profile, active).',
   'max_elements': 64,
   'max_bytes': None,
   'hash_tag': None,
   'groups': [],
   'foreign': False,
   'subject_field': 'userId'}),
 ({'name': 'comms_outbox',
   'pattern': '{{comms}}:outbox',
   'type': 'stream',
   'ttl': {'policy': 'none', 'min': None, 'max': None, 'default': None},
   'pii': False,
   'subject': None,
   'owner': 'communications',
   'description': 'Messages to send; dispatchers read with XREADGROUP, persist to MongoDB communications, '
                  'then XACK.',
   'max_elements': 1000000,
   'max_bytes': None,
   'hash_tag': 'comms',
   'groups': ['dispatchers'],
   'foreign': False},
  {'name': 'comms_outbox',
   'pattern': '{{comms}}:outbox',
   'type': 'stream',
   'ttl': {'policy': 'none', 'min': None, 'max': None, 'default': None},
   'pii': True,
   'subject': 'user_id',
   'owner': 'communications',
   'description': 'Messages to send; dispatchers read with XREADGROUP, persist to MongoDB communications, '
                  'then XACK.',
   'max_elements': 1000000,
   'max_bytes': None,
   'hash_tag': 'comms',
   'groups': ['dispatchers'],
   'foreign': False,
   'subject_field': 'userId'}),
 ({'name': 'comms_dead',
   'pattern': '{{comms}}:dead',
   'type': 'stream',
   'ttl': {'policy': 'none', 'min': None, 'max': None, 'default': None},
   'pii': False,
   'subject': None,
   'owner': 'communications',
   'description': 'Messages that failed delivery after every retry, kept for review.',
   'max_elements': 100000,
   'max_bytes': None,
   'hash_tag': 'comms',
   'groups': [],
   'foreign': False},
  {'name': 'comms_dead',
   'pattern': '{{comms}}:dead',
   'type': 'stream',
   'ttl': {'policy': 'none', 'min': None, 'max': None, 'default': None},
   'pii': True,
   'subject': 'user_id',
   'owner': 'communications',
   'description': 'Messages that failed delivery after every retry, kept for review.',
   'max_elements': 100000,
   'max_bytes': None,
   'hash_tag': 'comms',
   'groups': [],
   'foreign': False,
   'subject_field': 'userId'}),
 ({'name': 'comms_status',
   'pattern': 'comms:status:{message_id}',
   'type': 'hash',
   'ttl': {'policy': 'required', 'min': None, 'max': 604800, 'default': 172800},
   'pii': False,
   'subject': None,
   'owner': 'communications',
   'description': 'Delivery status (sent | delivered | failed) until MongoDB holds it.',
   'max_elements': 16,
   'max_bytes': None,
   'hash_tag': None,
   'groups': [],
   'foreign': False},
  {'name': 'comms_status',
   'pattern': 'comms:status:{message_id}',
   'type': 'hash',
   'ttl': {'policy': 'required', 'min': None, 'max': 604800, 'default': 172800},
   'pii': True,
   'subject': 'user_id',
   'owner': 'communications',
   'description': 'Delivery status (sent | delivered | failed) until MongoDB holds it.',
   'max_elements': 16,
   'max_bytes': None,
   'hash_tag': None,
   'groups': [],
   'foreign': False,
   'subject_field': 'userId'})]

CARD_COLUMNS = ('provider', 'provider_token', 'raw_card_number')
PCI_CONSTRAINTS = [*(f'payments_{c}_no_card_number' for c in CARD_COLUMNS), 'payments_card_last4_four_digits']

# The tenant policies' expression before this revision (a non-UUID app.user_id raised an error).
PREVIOUS_TENANT = "user_id = NULLIF(current_setting('app.user_id', true), '')::uuid"


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_function(
        name='sovren_current_tenant',
        args='',
        returns='uuid',
        body=TENANT_BODY,
        language='sql',
        security_definer=False,
        search_path=None,
        volatility='STABLE',
    )
    op.set_row_security(
        table='subscriptions',
        enabled=True,
        forced=True,
    )
    op.set_row_security(
        table='audit_log',
        enabled=True,
        forced=False,
    )
    op.replace_policy(
        name='users_tenant_isolation',
        table='users',
        using='user_id = sovren_current_tenant()',
        check='user_id = sovren_current_tenant()',
        command='ALL',
        roles=('sovren_app',),
        permissive=True,
    )
    op.replace_policy(
        name='operations_tenant_isolation',
        table='operations',
        using='user_id = sovren_current_tenant()',
        check='user_id = sovren_current_tenant()',
        command='ALL',
        roles=('sovren_app',),
        permissive=True,
    )
    op.create_policy(
        name='subscriptions_tenant_isolation',
        table='subscriptions',
        using='user_id = sovren_current_tenant()',
        check='user_id = sovren_current_tenant()',
        command='ALL',
        roles=('sovren_app',),
        permissive=True,
    )
    op.replace_policy(
        name='transactions_tenant_isolation',
        table='transactions',
        using='user_id = sovren_current_tenant()',
        check='user_id = sovren_current_tenant()',
        command='ALL',
        roles=('sovren_app',),
        permissive=True,
    )
    op.replace_policy(
        name='payments_tenant_isolation',
        table='payments',
        using='user_id = sovren_current_tenant()',
        check='user_id = sovren_current_tenant()',
        command='ALL',
        roles=('sovren_app',),
        permissive=True,
    )
    op.create_policy(
        name='audit_log_tenant_select',
        table='audit_log',
        using='user_id = sovren_current_tenant()',
        check=None,
        command='SELECT',
        roles=('sovren_app',),
        permissive=True,
    )
    op.create_policy(
        name='subscriptions_readonly_select',
        table='subscriptions',
        using='true',
        check=None,
        command='SELECT',
        roles=('sovren_readonly',),
        permissive=True,
    )
    op.create_policy(
        name='audit_log_readonly_select',
        table='audit_log',
        using='true',
        check=None,
        command='SELECT',
        roles=('sovren_readonly',),
        permissive=True,
    )
    op.create_function(
        name='sovren_luhn_card_run',
        args='value text',
        returns='boolean',
        body='''
    SELECT EXISTS (
        SELECT 1
          FROM pg_catalog.regexp_matches(value, '(?<![0-9A-Za-z])[0-9](?:[ -]*[0-9]){12,}(?![0-9A-Za-z])', 'g') AS run(found)
         CROSS JOIN LATERAL (SELECT pg_catalog.reverse(pg_catalog.translate(run.found[1], ' -', '')) AS digits) AS d
         WHERE pg_catalog.length(d.digits) <= 19
           AND (SELECT pg_catalog.sum(CASE WHEN i % 2 = 1 THEN n WHEN n > 4 THEN 2 * n - 9 ELSE 2 * n END)
                  FROM (SELECT i, pg_catalog.substr(d.digits, i, 1)::int AS n
                          FROM pg_catalog.generate_series(1, pg_catalog.length(d.digits)) AS i) AS position
               ) % 10 = 0
    )
    ''',
        language='sql',
        security_definer=False,
        search_path=None,
        volatility='IMMUTABLE',
    )
    op.create_function(
        name='sovren_has_card_number',
        args='value text',
        returns='boolean',
        body='''
    SELECT value OPERATOR(pg_catalog.~) '(?<![0-9A-Za-z])[0-9](?:[ -]*[0-9]){12,}(?![0-9A-Za-z])' AND public.sovren_luhn_card_run(value)
    ''',
        language='sql',
        security_definer=False,
        search_path=None,
        volatility='IMMUTABLE',
    )
    # Redis: the shared streams, status hashes and caches name their subject in userId (erasure reaches them).
    for before, after in SUBJECT_FIELD_FAMILIES:
        op.redis_declare_family(family=after, previous=before)
    # PCI scope (postgres/pci.py): added NOT VALID under a brief lock, validated below without blocking writes.
    for column in CARD_COLUMNS:
        op.create_check_constraint_not_valid(f'payments_{column}_no_card_number', 'payments',
                                             f'NOT sovren_has_card_number({column})')
    op.create_check_constraint_not_valid('payments_card_last4_four_digits', 'payments', "card_last4 ~ '^[0-9]{4}$'")

    with op.get_context().autocommit_block():
        for name in PCI_CONSTRAINTS:
            op.validate_constraint(name, 'payments')

    # payments holds data: index built without blocking writes
    with op.get_context().autocommit_block():
        op.create_index_concurrently('ix_payments_transaction_id', 'payments', ['transaction_id'], unique=False)

    # transactions holds data: index built without blocking writes
    with op.get_context().autocommit_block():
        op.create_index_concurrently('ix_transactions_subscription_id', 'transactions', ['subscription_id'], unique=False)
    # ### end Alembic commands ###


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    # transactions holds data: index dropped without blocking queries
    with op.get_context().autocommit_block():
        op.drop_index_concurrently('ix_transactions_subscription_id', 'transactions')

    # payments holds data: index dropped without blocking queries
    with op.get_context().autocommit_block():
        op.drop_index_concurrently('ix_payments_transaction_id', 'payments')

    op.drop_policy(
        name='audit_log_readonly_select',
        table='audit_log',
        using='true',
        check=None,
        command='SELECT',
        roles=('sovren_readonly',),
        permissive=True,
    )
    op.drop_policy(
        name='subscriptions_readonly_select',
        table='subscriptions',
        using='true',
        check=None,
        command='SELECT',
        roles=('sovren_readonly',),
        permissive=True,
    )
    op.drop_policy(
        name='audit_log_tenant_select',
        table='audit_log',
        using='user_id = sovren_current_tenant()',
        check=None,
        command='SELECT',
        roles=('sovren_app',),
        permissive=True,
    )
    op.drop_policy(
        name='subscriptions_tenant_isolation',
        table='subscriptions',
        using='user_id = sovren_current_tenant()',
        check='user_id = sovren_current_tenant()',
        command='ALL',
        roles=('sovren_app',),
        permissive=True,
    )
    for before, after in SUBJECT_FIELD_FAMILIES:
        op.redis_declare_family(family=before, previous=after)
    for name in PCI_CONSTRAINTS:
        op.execute(f'ALTER TABLE payments DROP CONSTRAINT IF EXISTS {name}')
    for name in ('sovren_has_card_number', 'sovren_luhn_card_run'):
        op.drop_function(name=name, args='value text', returns='boolean', body='', language='sql')
    for table in ('users', 'operations', 'transactions', 'payments'):
        op.replace_policy(name=f'{table}_tenant_isolation', table=table, using=PREVIOUS_TENANT,
                          check=PREVIOUS_TENANT, command='ALL', roles=('sovren_app',), permissive=True)
    op.set_row_security(
        table='audit_log',
        enabled=False,
        forced=False,
    )
    op.set_row_security(
        table='subscriptions',
        enabled=False,
        forced=False,
    )
    op.drop_function(
        name='sovren_current_tenant',
        args='',
        returns='uuid',
        body=TENANT_BODY,
        language='sql',
        security_definer=False,
        search_path=None,
        volatility='STABLE',
    )
    # ### end Alembic commands ###
