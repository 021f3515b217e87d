#!/usr/bin/env bash
# The AWS CLI against two gateways of one cluster, alternately: each step
# writes through one and reads through the other.
# Environment: EC2_GATEWAY_ENDPOINT_A, EC2_GATEWAY_ENDPOINT_B,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
set -euo pipefail
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
a() { aws --endpoint-url "$EC2_GATEWAY_ENDPOINT_A" ec2 "$@"; }
b() { aws --endpoint-url "$EC2_GATEWAY_ENDPOINT_B" ec2 "$@"; }
fail() { echo "FAIL $*"; exit 1; }

zones_a=$(a describe-availability-zones --query 'AvailabilityZones[].[ZoneName,ZoneId]' --output text)
zones_b=$(b describe-availability-zones --query 'AvailabilityZones[].[ZoneName,ZoneId]' --output text)
[ -n "$zones_a" ] && [ "$zones_a" = "$zones_b" ] || fail "zones differ: $zones_a / $zones_b"
echo "ok   same zones at both gateways"

ids=$(a run-instances --image-id ami-0b1c2d3e4f5a6b7c8 --instance-type t3.micro --count 2 \
  --query 'Instances[].InstanceId' --output text)
seen=$(b describe-instances --instance-ids $ids --query 'Reservations[].Instances[].InstanceId' --output text)
[ "$(echo $seen | tr ' ' '\n' | sort)" = "$(echo $ids | tr ' \t' '\n\n' | sort)" ] || fail "B sees $seen, not $ids"
echo "ok   run-instances at A, describe-instances at B"

first=${ids%%[[:space:]]*}
b create-tags --resources "$first" --tags Key=team,Value=blue
tag=$(a describe-tags --filters "Name=resource-id,Values=$first" --query 'Tags[0].Value' --output text)
[ "$tag" = "blue" ] || fail "tag at A: $tag"
echo "ok   create-tags at B, describe-tags at A"

b wait instance-running --instance-ids $ids
a terminate-instances --instance-ids $ids >/dev/null
b wait instance-terminated --instance-ids $ids
echo "ok   waiters at B follow changes made at A"
echo "all checks passed"
