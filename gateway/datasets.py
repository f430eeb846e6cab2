"""The resource catalog (资源目录) as service functions: the API and the console call these.

Everyone signed in sees the public datasets' descriptions — schemas, tags, bounds, declared
domains, never a value of the data; a dataset the enclave derived for one operator (a PSI
match) is seen by that operator's tenant and by the authority and auditors only.
"""

from __future__ import annotations

from gateway.control import Principal
from gateway.control.identity import SEES_ALL, invisible
from gateway.platform import Platform
from sandbox.catalog import Dataset
from sandbox.errors import CatalogError


def visible(dataset: Dataset, principal: Principal) -> bool:
    """Whether ``principal`` may see ``dataset``'s description."""
    owner = dataset.extra.get("operator")
    return owner is None or principal.role in SEES_ALL or owner == principal.tenant


def list_datasets(platform: Platform, principal: Principal) -> list[Dataset]:
    """Every dataset the caller may see, in catalog order."""
    return [d for d in platform.catalog.list() if visible(d, principal)]


def get_dataset(platform: Platform, principal: Principal, name: str) -> Dataset:
    """One dataset the caller may see; NotFound ``G-TENANT`` otherwise."""
    try:
        found = platform.catalog.get(name)
    except CatalogError:
        raise invisible("dataset", name) from None
    if not visible(found, principal):
        raise invisible("dataset", name)
    return found
