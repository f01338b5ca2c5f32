"""Where Sovren keeps personal data and encrypted values (§6, Appendix G.1 and G.3).

Every table holding a user's data is declared here with what ``sovren-db
erase`` does with that user's rows; ``sovren-db check`` reports a table that
references ``users`` (or holds a column named like personal data) without a
declaration here, so a new table cannot silently escape erasure.

- ``users`` is the data subject's own row: deleted last, once nothing refers to it.
- ``subscriptions``, ``transactions`` and ``payments`` reference the user with a
  NOT NULL foreign key: they are deleted (children first, the order comes from
  the foreign keys).
- ``operations`` keeps its statistics (confidence, timing) for capacity
  planning, detached from the person: the subject and the free-form JSON
  columns are cleared.
- ``audit_log`` is immutable and cannot be deleted from. By design it holds no
  column values, only keys, changed column names and ``user_id``; once the
  rows it names are gone those ids are not linked to a person any more. The
  erasure adds one ``ERASE`` event holding a salted hash of the subject.

``payments.provider_token`` holds the payment provider's token encrypted with
pgcrypto (AES-256), ASCII-armored because the column is text:
``armor(pgp_sym_encrypt(token, key, 'cipher-algo=aes256'))``, read back with
``pgp_sym_decrypt(dearmor(provider_token), key)``.
"""

from sovren_db.postgres.state import Encrypted, PersonalData

personal_data = [
    # username and email identify the person wherever they were copied: 'erase --verify' looks for them.
    PersonalData("users", "user_id",
                 columns=("username", "email", "password_hash", "shadow_board", "last_login"),
                 identifying=("username", "email")),
    PersonalData("subscriptions", "user_id"),
    PersonalData("transactions", "user_id"),
    PersonalData("payments", "user_id", columns=("provider_token", "card_last4")),
    PersonalData("operations", "user_id", columns=("parameters", "result"), erase="anonymise",
                 anonymise={"user_id": "NULL", "parameters": "NULL", "result": "NULL"}),
    PersonalData("audit_log", "user_id", erase="retain",
                 reason="immutable audit trail: keys and changed column names only, never values"),
]

encrypted = [
    Encrypted("payments", "provider_token"),
]
