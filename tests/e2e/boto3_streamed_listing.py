"""boto3 and the AWS CLI read a streamed DescribeInstances.

A listing of more than 256 instances is sent in chunks as it is rendered
(no Content-Length). Launches 330 instances in three reservations, then
lists them all with boto3 (one call, no paginator) and with
`aws ec2 describe-instances`: every instance, once, in its reservation.
Environment as boto3_zones.py.
"""
import json
import os
import subprocess
import sys

import boto3

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]
IMAGE = "ami-0b1c2d3e4f5a6b7c8"


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


ec2 = boto3.client("ec2", endpoint_url=ENDPOINT, region_name="us-east-1")
launched = {}
for _ in range(3):
    answer = ec2.run_instances(
        ImageId=IMAGE, MinCount=110, MaxCount=110, InstanceType="t2.micro"
    )
    launched[answer["ReservationId"]] = sorted(
        i["InstanceId"] for i in answer["Instances"]
    )
check("330 instances launched", sum(len(v) for v in launched.values()) == 330)

raw = ec2.describe_instances()
check("boto3: no NextToken", "NextToken" not in raw, raw.get("NextToken"))
listed = {
    r["ReservationId"]: sorted(i["InstanceId"] for i in r["Instances"])
    for r in raw["Reservations"]
}
check("boto3: every reservation once", len(raw["Reservations"]) == 3)
check("boto3: every instance in its reservation", listed == launched)

cli = subprocess.run(
    ["aws", "ec2", "describe-instances", "--endpoint-url", ENDPOINT,
     "--region", "us-east-1", "--output", "json"],
    capture_output=True, text=True, check=False,
)
check("aws cli answered", cli.returncode == 0, cli.stderr)
reservations = json.loads(cli.stdout)["Reservations"]
listed = {
    r["ReservationId"]: sorted(i["InstanceId"] for i in r["Instances"])
    for r in reservations
}
check("aws cli: every instance in its reservation", listed == launched)
print("all checks passed")
