"""boto3 against a running gateway: SigV4, SigV2, presigned URLs, errors.

Environment: EC2_GATEWAY_ENDPOINT (http://host:port), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY. Prints one line per check; exits non-zero on failure.
"""
import os
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["EC2_GATEWAY_ENDPOINT"]
KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]


def client(secret=SECRET, **config):
    return boto3.client(
        "ec2",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def error_code(call):
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("expected an error")


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


for label, ec2 in [("sigv4", client()), ("sigv2", client(signature_version="v2"))]:
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    check(f"{label} zone names", [z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b", "us-east-1c"], zones)
    check(f"{label} zones available", all(z["State"] == "available" for z in zones), zones)
    check(f"{label} zone ids", [z["ZoneId"] for z in zones] == ["use1-az1", "use1-az2", "use1-az3"], zones)
    check(f"{label} zone fields", zones[0]["RegionName"] == "us-east-1" and zones[0]["Messages"] == [] and zones[0]["ZoneType"] == "availability-zone", zones[0])
    picked = ec2.describe_availability_zones(ZoneNames=["us-east-1c"], AllAvailabilityZones=True)["AvailabilityZones"]
    check(f"{label} ZoneName.N", [z["ZoneName"] for z in picked] == ["us-east-1c"], picked)
    filtered = ec2.describe_availability_zones(Filters=[{"Name": "zone-name", "Values": ["*1b", "nope"]}, {"Name": "state", "Values": ["available"]}])["AvailabilityZones"]
    check(f"{label} filters", [z["ZoneName"] for z in filtered] == ["us-east-1b"], filtered)
    regions = ec2.describe_regions()["Regions"]
    check(f"{label} regions", [r["RegionName"] for r in regions] == ["us-east-1", "us-west-2"] and regions[0]["Endpoint"] == ENDPOINT.split("//")[1], regions)
    check(f"{label} dry run", error_code(lambda: ec2.describe_availability_zones(DryRun=True)) == ("DryRunOperation", 412))
    check(f"{label} unknown zone", error_code(lambda: ec2.describe_availability_zones(ZoneNames=["us-east-1q"])) == ("InvalidParameterValue", 400))
    check(f"{label} bad filter", error_code(lambda: ec2.describe_availability_zones(Filters=[{"Name": "colour", "Values": ["x"]}])) == ("InvalidFilter", 400))

check("wrong secret (sigv4)", error_code(lambda: client(secret="x" * 40).describe_regions()) == ("SignatureDoesNotMatch", 403))
check("wrong secret (sigv2)", error_code(lambda: client(secret="x" * 40, signature_version="v2").describe_regions()) == ("SignatureDoesNotMatch", 403))

url = client().generate_presigned_url("describe_availability_zones", Params={"ZoneNames": ["us-east-1a"]}, ExpiresIn=300)
body = urllib.request.urlopen(url).read().decode()
check("presigned GET", "<zoneName>us-east-1a</zoneName>" in body and "us-east-1b" not in body, body)
try:
    urllib.request.urlopen(url.replace("us-east-1a", "us-east-1b"))
    check("tampered presigned URL", False, "accepted")
except urllib.error.HTTPError as error:
    check("tampered presigned URL", error.code == 403 and b"SignatureDoesNotMatch" in error.read())
print("boto3: all checks passed")
