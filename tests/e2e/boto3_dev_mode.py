"""A short boto3 suite as projects write it for moto or LocalStack, run
against `ec2-gateway serve --dev`: dummy credentials, two regions.

Environment: EC2_GATEWAY_ENDPOINT. Prints one line per check; exits
non-zero on failure.
"""
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]


def ec2(region):
    return boto3.client(
        "ec2",
        endpoint_url=ENDPOINT,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        aws_session_token="testing",  # moto's documented setup exports one
        config=Config(retries={"max_attempts": 2}),
    )


def check(what, condition):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        raise SystemExit(1)


east, west = ec2("us-east-1"), ec2("us-west-2")
zones = [z["ZoneName"] for z in west.describe_availability_zones()["AvailabilityZones"]]
check("us-west-2 has its zones on first use", zones == ["us-west-2a", "us-west-2b", "us-west-2c"])
regions = [r["RegionName"] for r in east.describe_regions()["Regions"]]
check("describe_regions lists both regions", "us-east-1" in regions and "us-west-2" in regions)

image = east.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
key = east.create_key_pair(KeyName="ci-key")
check("key pair created with a dummy key", key["KeyMaterial"].startswith("-----BEGIN"))
run = east.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1, KeyName="ci-key")
instance = run["Instances"][0]["InstanceId"]
check("owner is the default account", run["OwnerId"] == "123456789012")
east.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig={"Delay": 1})
check("instance running", True)

west_image = west.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
west_run = west.run_instances(
    ImageId=west_image, InstanceType="t3.micro", MinCount=1, MaxCount=1,
    Placement={"AvailabilityZone": "us-west-2b"},
)
west_instance = west_run["Instances"][0]
check("placed in us-west-2b", west_instance["Placement"]["AvailabilityZone"] == "us-west-2b")
try:
    east.describe_instances(InstanceIds=[west_instance["InstanceId"]])
    check("regions are separate", False)
except ClientError as error:
    check("regions are separate", error.response["Error"]["Code"] == "InvalidInstanceID.NotFound")

east.terminate_instances(InstanceIds=[instance])
east.get_waiter("instance_terminated").wait(InstanceIds=[instance], WaiterConfig={"Delay": 1})
check("instance terminated", True)
east.delete_key_pair(KeyName="ci-key")
check("key pair deleted", east.describe_key_pairs()["KeyPairs"] == [])
