"""The peer's fake Messages API, unchanged but for ``TCP_NODELAY`` on its connections.

Run as ``python _nodelay_model.py PEER_FAKE_MODEL_DIR [fake_anthropic.py's options]``.

The peer's server writes a response's headers and its body in two ``send`` calls with Nagle's
algorithm on, so on a kept-alive connection the body waits for the client's delayed ACK of the
headers: about 40 ms per model call on Linux (measured here: p50 44 ms per streamed call,
0.64 ms with this switch). Every run of either server waits that long, so at a fixed
concurrency both are bound by the stall rather than by their own work. ``bench_vs_flue.py
--model-nodelay`` starts the model through this file; it changes no byte the model sends.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    folder = Path(sys.argv[1])
    sys.path.insert(0, str(folder))
    import fake_anthropic  # type: ignore[import-not-found]  # the peer's file, found at run time

    # socketserver.StreamRequestHandler sets TCP_NODELAY on each connection when this is true.
    fake_anthropic.Handler.disable_nagle_algorithm = True
    sys.argv = [str(folder / "fake_anthropic.py"), *sys.argv[2:]]
    fake_anthropic.main()


if __name__ == "__main__":
    main()
