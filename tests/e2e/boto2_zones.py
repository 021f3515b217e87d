"""boto 2 (Debian's python3-boto) against a running gateway.

Its default SigV4 (scope guessed from the host name: region 0/service 127
for 127.0.0.1, localhost/localhost for localhost), SigV2 and SigV1.
Environment as for boto3_zones.py. Exits non-zero on failure.
"""
import os
import sys

import boto
from boto.ec2.connection import EC2Connection
from boto.ec2.regioninfo import RegionInfo
from boto.exception import EC2ResponseError

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]
KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
PORT = int(ENDPOINT.rsplit(":", 1)[1].rstrip("/"))


class SigV2Connection(EC2Connection):
    def _required_auth_capability(self):
        return ["sign-v2"]


class SigV1Connection(EC2Connection):
    def _required_auth_capability(self):
        return ["sign-v1"]


def connect(cls, host, secret=SECRET):
    region = RegionInfo(name="us-east-1", endpoint=host)
    return cls(KEY, secret, is_secure=False, region=region, port=PORT, path="/")


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


for label, cls, host in [
    ("sigv4 127.0.0.1", EC2Connection, "127.0.0.1"),
    ("sigv4 localhost", EC2Connection, "localhost"),
    ("sigv2", SigV2Connection, "127.0.0.1"),
    ("sigv1", SigV1Connection, "127.0.0.1"),
]:
    conn = connect(cls, host)
    zones = conn.get_all_zones()
    check(f"{label} zones", [z.name for z in zones] == ["us-east-1a", "us-east-1b", "us-east-1c"], zones)
    check(f"{label} states", all(z.state == "available" for z in zones), [z.state for z in zones])
    picked = conn.get_all_zones(zones=["us-east-1b"])
    check(f"{label} by name", [z.name for z in picked] == ["us-east-1b"], picked)
    filtered = conn.get_all_zones(filters={"zone-name": "*1c"})
    check(f"{label} filters", [z.name for z in filtered] == ["us-east-1c"], filtered)
    regions = conn.get_all_regions()
    check(f"{label} regions", [r.name for r in regions] == ["us-east-1", "us-west-2"] and regions[0].endpoint == ENDPOINT.split("//")[1], regions)
    try:
        connect(cls, host, secret="x" * 40).get_all_zones()
        check(f"{label} wrong secret", False, "accepted")
    except EC2ResponseError as error:
        check(f"{label} wrong secret", error.status == 403 and error.error_code == "SignatureDoesNotMatch", (error.status, error.error_code))
print("boto2: all checks passed")
