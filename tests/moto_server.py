"""Test infrastructure: runs moto's AWS emulator on a free loopback port.

strata's integration tests start this once per test run (one server, every test in
its own moto account through the `x-moto-account-id` header). It prints the port on
stdout, then serves until its stdin closes, which happens when the test process ends,
so no server outlives the tests. Pinned to the moto version scripts/setup installs
(5.2.5), whose known gap it patches below; strata itself never fakes AWS behaviour.
"""

import logging
import sys

from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.utils import parse_user_data
from moto.server import ThreadedMotoServer

# moto 5.2.5 gap: CreateLaunchTemplateVersion stores UserData as a plain string where
# CreateLaunchTemplate stores it parsed, and instances launched from such a version
# crash the server. Parse it the same way in both paths.
_create_version = LaunchTemplate.create_version


def _create_version_parsed(self, data, description):
    if isinstance(data.get("UserData"), str):
        data["UserData"] = parse_user_data(data["UserData"])
    return _create_version(self, data, description)


LaunchTemplate.create_version = _create_version_parsed

# One line per request on stderr would drown test and demo output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
_host, port = server.get_host_and_port()
print(port, flush=True)
sys.stdin.read()
server.stop()
