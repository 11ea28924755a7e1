"""Test infrastructure: runs moto's AWS emulator on a free loopback port.

strata's integration tests start this once per test run (one server, every test in
its own moto account through the `x-moto-account-id` header). It prints the port on
stdout, then serves until its stdin closes, which happens when the test process ends,
so no server outlives the tests. Pinned to the moto version scripts/setup installs
(5.2.5), whose known gaps it patches below (five of them); strata itself never fakes AWS behaviour.
"""

import datetime
import logging
import sys
import uuid

from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.ec2.models.instances import Instance
from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.models.nat_gateways import NatGatewayBackend
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

# moto 5.2.5 gap: StartInstanceRefresh, DescribeInstanceRefreshes and
# CancelInstanceRefresh are not implemented (HTTP 500). A minimal model: a refresh is
# recorded with the preferences it was given and completes at once.
_REFRESHES = {}


def _start_instance_refresh(self):
    group = self._get_param("AutoScalingGroupName")
    preferences = self._get_param("Preferences") or {}
    now = datetime.datetime.now(datetime.timezone.utc)
    refresh = {
        "InstanceRefreshId": str(uuid.uuid4()),
        "AutoScalingGroupName": group,
        "Status": "Successful",
        "PercentageComplete": 100,
        "StartTime": now,
        "EndTime": now,
        "Preferences": {
            k: preferences[k]
            for k in ("MinHealthyPercentage", "InstanceWarmup", "SkipMatching")
            if k in preferences
        },
    }
    _REFRESHES.setdefault((self.current_account, self.region, group), []).insert(0, refresh)
    return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})


def _describe_instance_refreshes(self):
    group = self._get_param("AutoScalingGroupName")
    ids = self._get_param("InstanceRefreshIds") or []
    found = _REFRESHES.get((self.current_account, self.region, group), [])
    if ids:
        found = [r for r in found if r["InstanceRefreshId"] in ids]
    return ActionResult({"InstanceRefreshes": found, "NextToken": None})


def _cancel_instance_refresh(self):
    group = self._get_param("AutoScalingGroupName")
    for refresh in _REFRESHES.get((self.current_account, self.region, group), []):
        if refresh["Status"] in ("Pending", "InProgress"):
            refresh["Status"] = "Cancelled"
            return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})
    return ActionResult({})


AutoScalingResponse.start_instance_refresh = _start_instance_refresh
AutoScalingResponse.describe_instance_refreshes = _describe_instance_refreshes
AutoScalingResponse.cancel_instance_refresh = _cancel_instance_refresh

# moto 5.2.5 gap: terminating an instance keeps its private address taken in its
# subnet (its primary network interface is not deleted), so a replacement cannot
# launch at the same address. EC2 frees the address with the instance; do the same.
_terminate = Instance.terminate


def _terminate_freeing_address(self):
    previous = _terminate(self)
    subnet_id = self.subnet_id
    if subnet_id:
        subnet = self.ec2_backend.get_subnet(subnet_id)
        for ip in list(self._private_ips):
            subnet.del_subnet_ip(ip)
    return previous


Instance.terminate = _terminate_freeing_address

# moto 5.2.5 gap: a launch template's tags are copied once at creation, so a tag added
# later with CreateTags (strata records the commit applied that way) never shows in
# DescribeLaunchTemplates. Read them from the tag store, as EC2 does.
LaunchTemplate.tags = property(lambda self: self.get_tags(), lambda self, _value: None)

# moto 5.2.5 gap: deleting a NAT gateway leaves its elastic IP associated, so a NAT
# gateway replaced in another subnet cannot take the same address. EC2 releases the
# association when the gateway is deleted; do the same.
_delete_nat_gateway = NatGatewayBackend.delete_nat_gateway


def _delete_nat_gateway_releasing_address(self, nat_gateway_id):
    gateway = _delete_nat_gateway(self, nat_gateway_id)
    for address in self.addresses:
        if address.eni is not None and address.eni is getattr(gateway, "_eni", None):
            self.disassociate_address(association_id=address.association_id)
    return gateway


NatGatewayBackend.delete_nat_gateway = _delete_nat_gateway_releasing_address

# One line per request on stderr would drown test and demo output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
_host, port = server.get_host_and_port()
print(port, flush=True)
sys.stdin.read()
server.stop()
