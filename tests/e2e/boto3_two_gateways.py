"""boto3 against two gateways of one cluster, alternately.

Environment: EC2_GATEWAY_ENDPOINT_A and EC2_GATEWAY_ENDPOINT_B (http://host:port),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY. Each step writes through one
gateway and reads through the other: what one replica answered, the other
shows at once (read-your-writes across replicas), a NextToken of one works
at the other, and a ClientToken retried at the other gets the first
reservation. Prints one line per check; exits non-zero on failure.
"""
import os
import sys

import boto3
from botocore.config import Config

KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
IMAGE = "ami-0b1c2d3e4f5a6b7c8"


def client(endpoint):
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


a = client(os.environ["EC2_GATEWAY_ENDPOINT_A"])
b = client(os.environ["EC2_GATEWAY_ENDPOINT_B"])


def check(what, condition):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        sys.exit(1)


zones_a = [z["ZoneName"] for z in a.describe_availability_zones()["AvailabilityZones"]]
zones_b = [z["ZoneName"] for z in b.describe_availability_zones()["AvailabilityZones"]]
ids_a = [z["ZoneId"] for z in a.describe_availability_zones()["AvailabilityZones"]]
ids_b = [z["ZoneId"] for z in b.describe_availability_zones()["AvailabilityZones"]]
check("both gateways list the same zones and zone ids", zones_a == zones_b and ids_a == ids_b and zones_a)

launched = a.run_instances(ImageId=IMAGE, InstanceType="t3.micro", MinCount=6, MaxCount=6)
ids = sorted(i["InstanceId"] for i in launched["Instances"])
seen = b.describe_instances(InstanceIds=ids)
seen_ids = sorted(i["InstanceId"] for r in seen["Reservations"] for i in r["Instances"])
check("launched at A, described at B at once", seen_ids == ids)

b.create_tags(Resources=[ids[0]], Tags=[{"Key": "team", "Value": "blue"}])
tags = a.describe_tags(Filters=[{"Name": "resource-id", "Values": [ids[0]]}])["Tags"]
check("tagged at B, seen at A", [(t["Key"], t["Value"]) for t in tags] == [("team", "blue")])

page = a.describe_instances(MaxResults=5)
check("six instances make a second page", "NextToken" in page)
rest = b.describe_instances(MaxResults=5, NextToken=page["NextToken"])
first = {i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]}
second = {i["InstanceId"] for r in rest["Reservations"] for i in r["Instances"]}
check("a NextToken of A pages on at B", second and not (first & second))

token = "two-gateways-" + ids[0]
first = a.run_instances(ImageId=IMAGE, InstanceType="t3.micro", MinCount=1, MaxCount=1, ClientToken=token)
again = b.run_instances(ImageId=IMAGE, InstanceType="t3.micro", MinCount=1, MaxCount=1, ClientToken=token)
check(
    "a ClientToken retried at B gets A's reservation",
    first["ReservationId"] == again["ReservationId"]
    and [i["InstanceId"] for i in first["Instances"]] == [i["InstanceId"] for i in again["Instances"]],
)
ids.append(first["Instances"][0]["InstanceId"])

b.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
check("the waiter at B sees them running", True)

name = "two-gateways-" + ids[0]
created = a.create_key_pair(KeyName=name)
pairs = b.describe_key_pairs(KeyNames=[name])["KeyPairs"]
check("a key pair made at A is at B", [p["KeyFingerprint"] for p in pairs] == [created["KeyFingerprint"]])
b.delete_key_pair(KeyName=name)
check("deleted at B, gone at A", name not in [p["KeyName"] for p in a.describe_key_pairs()["KeyPairs"]])

group = b.create_security_group(GroupName=name, Description="two gateways")["GroupId"]
a.authorize_security_group_ingress(
    GroupId=group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
)
rules = b.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
check("a rule added at A is at B", [(r["FromPort"], r["IpRanges"][0]["CidrIp"]) for r in rules] == [(22, "10.0.0.0/8")])

a.terminate_instances(InstanceIds=ids)
b.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
check("terminated at A, the waiter at B sees them terminated", True)
b.delete_security_group(GroupId=group)
print("all checks passed")
