"""The live servers the tests start: see components.engine.servers (`make demo` starts them too)."""

from components.engine.servers import (
    HOST,
    MOTO_ENV,
    ROOT_TOKEN,
    BaoServer,
    Server,
    bao_binary,
    clean_env,
    free_port,
    reset_moto,
    start_bao,
    start_moto,
    wait_http,
)

__all__ = [
    "HOST",
    "MOTO_ENV",
    "ROOT_TOKEN",
    "BaoServer",
    "Server",
    "bao_binary",
    "clean_env",
    "free_port",
    "reset_moto",
    "start_bao",
    "start_moto",
    "wait_http",
]
