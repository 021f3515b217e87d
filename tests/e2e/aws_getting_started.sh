#!/usr/bin/env bash
# The EC2 getting-started guide with the AWS CLI, against ec2-gateway:
# security group + SSH rule, key pair, instance, tag, Elastic IP, volume,
# snapshot, then clean-up. Every step's output is checked.
# Needs EC2_GATEWAY_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ec2() { aws --endpoint-url "$EC2_GATEWAY_ENDPOINT" --region us-east-1 --output text ec2 "$@"; }
expect() { # expect <what> <actual> <wanted>
  if [ "$2" != "$3" ]; then echo "FAIL $1: got '$2', wanted '$3'"; exit 1; fi
  echo "ok   $1"
}
expect_match() { # expect_match <what> <actual> <pattern>
  if [[ ! "$2" =~ $3 ]]; then echo "FAIL $1: '$2' does not match $3"; exit 1; fi
  echo "ok   $1"
}

vpc=$(ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId')
expect_match "default VPC" "$vpc" '^vpc-[0-9a-f]{17}$'
group=$(ec2 create-security-group --group-name getting-started --description "SSH from the office" --vpc-id "$vpc" --query GroupId)
expect_match "security group" "$group" '^sg-[0-9a-f]{17}$'
rule=$(ec2 authorize-security-group-ingress --group-id "$group" --protocol tcp --port 22 --cidr 203.0.113.0/24 --query 'SecurityGroupRules[0].[IpProtocol,FromPort,ToPort,CidrIpv4]')
expect "SSH rule" "$rule" $'tcp\t22\t22\t203.0.113.0/24'
ec2 create-key-pair --key-name getting-started --query KeyMaterial > "$work/key.pem"
chmod 600 "$work/key.pem"
ssh-keygen -y -f "$work/key.pem" > /dev/null && echo "ok   key pair accepted by ssh-keygen"
instance=$(ec2 run-instances --image-id ami-0b1c2d3e4f5a6b7c8 --instance-type t3.micro --count 1 \
  --key-name getting-started --security-group-ids "$group" --placement AvailabilityZone=us-east-1a --query 'Instances[0].InstanceId')
expect_match "instance" "$instance" '^i-[0-9a-f]{17}$'
ec2 wait instance-running --instance-ids "$instance"
ec2 create-tags --resources "$instance" --tags Key=Name,Value=getting-started
named=$(ec2 describe-instances --filters Name=tag:Name,Values=getting-started --query 'Reservations[0].Instances[0].[InstanceId,State.Name,SecurityGroups[0].GroupId]')
expect "tagged and running" "$named" "$instance"$'\trunning\t'"$group"
allocation=$(ec2 allocate-address --domain vpc --query AllocationId)
expect_match "Elastic IP" "$allocation" '^eipalloc-[0-9a-f]{17}$'
association=$(ec2 associate-address --instance-id "$instance" --allocation-id "$allocation" --query AssociationId)
expect_match "associated" "$association" '^eipassoc-[0-9a-f]{17}$'
public_ip=$(ec2 describe-addresses --allocation-ids "$allocation" --query 'Addresses[0].PublicIp')
shown=$(ec2 describe-instances --instance-ids "$instance" --query 'Reservations[0].Instances[0].PublicIpAddress')
expect "instance shows its public IP" "$shown" "$public_ip"
volume=$(ec2 create-volume --availability-zone us-east-1a --size 10 --volume-type gp3 --query VolumeId)
ec2 wait volume-available --volume-ids "$volume"
attached=$(ec2 attach-volume --volume-id "$volume" --instance-id "$instance" --device /dev/sdf --query Device)
expect "volume attached" "$attached" "/dev/sdf"
ec2 wait volume-in-use --volume-ids "$volume"
snapshot=$(ec2 create-snapshot --volume-id "$volume" --description "getting started" --query SnapshotId)
ec2 wait snapshot-completed --snapshot-ids "$snapshot"
expect "snapshot completed" "$(ec2 describe-snapshots --snapshot-ids "$snapshot" --query 'Snapshots[0].[State,Progress,VolumeSize]')" $'completed\t100%\t10'

# Clean up, in the order EC2 requires.
ec2 delete-snapshot --snapshot-id "$snapshot"
ec2 detach-volume --volume-id "$volume" > /dev/null
ec2 wait volume-available --volume-ids "$volume"
ec2 delete-volume --volume-id "$volume"
ec2 disassociate-address --association-id "$association"
ec2 release-address --allocation-id "$allocation"
ec2 terminate-instances --instance-ids "$instance" > /dev/null
ec2 wait instance-terminated --instance-ids "$instance"
ec2 delete-key-pair --key-name getting-started > /dev/null
ec2 delete-security-group --group-id "$group" > /dev/null
expect "nothing left: volumes" "$(ec2 describe-volumes --query 'length(Volumes)')" "0"
expect "nothing left: addresses" "$(ec2 describe-addresses --query 'length(Addresses)')" "0"
expect "nothing left: snapshots" "$(ec2 describe-snapshots --owner-ids self --query 'length(Snapshots)')" "0"
expect "nothing left: groups" "$(ec2 describe-security-groups --query 'SecurityGroups[].GroupName')" "default"
echo "aws getting-started: all checks passed"
