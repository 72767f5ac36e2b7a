"""Puts the user's config folder in front of ftx's on Hydra's search path.

Hydra's own ways to add a folder (`--config-dir`, `hydra.searchpath`) add it *behind* the primary config
directory, so ftx's option would win over a user's option of the same name. ftx sets
`$FTX_CONF_LAYER` (ftx.spec.tree.layers: --config-dir, $FTX_CONF or ./conf) to the user's folder before
Hydra starts, and this plugin prepends it: the compose API (`ftx spec`, validation) and Hydra's app run
(`ftx train`, every sweep job: they inherit the variable) then search the same folders in the same order.
Without the variable (any other Hydra app in the environment) it does nothing.
"""

from __future__ import annotations

import os

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

ENV = "FTX_CONF_LAYER"
PROVIDER = "ftx-user"


class FtxUserConfSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        folder = os.environ.get(ENV)
        if folder:
            search_path.prepend(provider=PROVIDER, path=f"file://{folder}", anchor=SearchPathQuery(provider="main"))
