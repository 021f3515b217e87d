"""boto 2 over SigV2: launch, list with get_all_reservations, terminate."""
import os
import sys
import time

from boto.ec2.connection import EC2Connection
from boto.ec2.regioninfo import RegionInfo
from boto.exception import EC2ResponseError

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]
PORT = int(ENDPOINT.rsplit(":", 1)[1].rstrip("/"))


class SigV2Connection(EC2Connection):
    def _required_auth_capability(self):
        return ["sign-v2"]


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


conn = SigV2Connection(
    os.environ["AWS_ACCESS_KEY_ID"],
    os.environ["AWS_SECRET_ACCESS_KEY"],
    is_secure=False,
    region=RegionInfo(name="us-east-1", endpoint="127.0.0.1"),
    port=PORT,
    path="/",
)
reservation = conn.run_instances(
    "ami-0b1c2d3e4f5a6b7c8",
    min_count=2,
    max_count=2,
    instance_type="t3.micro",
    placement="us-east-1b",
    security_groups=["default"],
    user_data="#!/bin/sh\necho hello\n",
    client_token="boto2-token-1",
)
ids = sorted(i.id for i in reservation.instances)
check("two instances", len(ids) == 2, ids)
check("placed in us-east-1b", all(i.placement == "us-east-1b" for i in reservation.instances), [i.placement for i in reservation.instances])
check("pending first", all(i.state == "pending" for i in reservation.instances), [i.state for i in reservation.instances])
again = conn.run_instances("ami-0b1c2d3e4f5a6b7c8", min_count=2, max_count=2, instance_type="t3.micro", placement="us-east-1b", security_groups=["default"], user_data="#!/bin/sh\necho hello\n", client_token="boto2-token-1")
check("same token, same reservation", again.id == reservation.id and sorted(i.id for i in again.instances) == ids)
for _ in range(50):
    reservations = conn.get_all_reservations(filters={"client-token": "boto2-token-1"})
    states = [i.state for r in reservations for i in r.instances]
    if states == ["running", "running"]:
        break
    time.sleep(0.1)
check("running", states == ["running", "running"], states)
check("one reservation", len(reservations) == 1 and reservations[0].id == reservation.id)
check("groups", [g.name for g in reservations[0].instances[0].groups] == ["default"])
attribute = conn.get_instance_attribute(ids[0], "userData")
check("user data kept", attribute["userData"] is not None)
try:
    conn.get_all_reservations(instance_ids=["i-0000000000000000f"])
    check("unknown id", False, "accepted")
except EC2ResponseError as error:
    check("unknown id", error.error_code == "InvalidInstanceID.NotFound", error.error_code)
terminated = conn.terminate_instances(ids)
check("terminate", sorted(i.id for i in terminated) == ids)
for _ in range(50):
    states = [i.state for r in conn.get_all_reservations(instance_ids=ids) for i in r.instances]
    if states == ["terminated", "terminated"]:
        break
    time.sleep(0.1)
check("terminated", states == ["terminated", "terminated"], states)
print("boto2 instances: all checks passed")
