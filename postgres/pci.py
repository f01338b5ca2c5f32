"""PCI DSS scope (Appendix G.5): the tables whose text columns may never hold a card number.

``sovren-db check`` verifies in the catalog that every text column of a scoped
table has its ``NOT sovren_has_card_number(...)`` CHECK constraint (declared in
``tables.py``) and that ``card_last4`` is four digits.
"""

from sovren_db.postgres import PciScope
from sovren_db.postgres.pci import functions  # noqa: F401  (sovren_has_card_number and its Luhn helper)

scopes = [
    PciScope("payments", last4=("card_last4",)),
]
