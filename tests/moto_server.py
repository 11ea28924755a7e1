"""Test infrastructure: runs moto's AWS emulator on a free loopback port.

strata's integration tests start this once per test run (one server, every test in
its own moto account through the `x-moto-account-id` header). It prints the port on
stdout, then serves until its stdin closes, which happens when the test process ends,
so no server outlives the tests. Pinned to the moto version scripts/setup installs.
"""

import logging
import sys

from moto.server import ThreadedMotoServer

# One line per request on stderr would drown test and demo output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
_host, port = server.get_host_and_port()
print(port, flush=True)
sys.stdin.read()
server.stop()
