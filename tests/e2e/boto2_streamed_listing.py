"""boto 2 reads a streamed DescribeInstances (after boto3_streamed_listing.py
launched 330 instances): every instance, once, in its reservation."""
import os
import sys

from boto.ec2.connection import EC2Connection
from boto.ec2.regioninfo import RegionInfo

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]
PORT = int(ENDPOINT.rsplit(":", 1)[1].rstrip("/"))


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


conn = EC2Connection(
    os.environ["AWS_ACCESS_KEY_ID"],
    os.environ["AWS_SECRET_ACCESS_KEY"],
    is_secure=False,
    region=RegionInfo(name="us-east-1", endpoint="127.0.0.1"),
    port=PORT,
    path="/",
)
reservations = conn.get_all_reservations()
check("boto 2: three reservations", len(reservations) == 3, len(reservations))
ids = [i.id for r in reservations for i in r.instances]
check("boto 2: 330 instances, each once", len(ids) == 330 and len(set(ids)) == 330, len(ids))
print("all checks passed")
