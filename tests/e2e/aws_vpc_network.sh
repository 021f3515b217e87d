#!/usr/bin/env bash
# A VPC built the way EC2 scripts build one, with the AWS CLI against
# ec2-gateway: a VPC with a public and a private subnet, an internet gateway,
# a NAT gateway with an Elastic IP, route tables, a security group, an
# instance in each subnet (one from a launch template), a second network
# interface with its own Elastic IP, a Windows instance's password, an image
# baked from an instance and launched; then everything torn down in EC2's
# order, and nothing left. Every step's output is checked.
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
expect_error() { # expect_error <what> <code> <command...>
  local what=$1 code=$2; shift 2
  local out
  if out=$("$@" 2>&1); then echo "FAIL $what: succeeded, wanted $code"; exit 1; fi
  if [[ "$out" != *"($code)"* ]]; then echo "FAIL $what: '$out' is not $code"; exit 1; fi
  echo "ok   $what ($code)"
}

vpc=$(ec2 create-vpc --cidr-block 10.0.0.0/16 \
  --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=network}]' --query Vpc.VpcId)
expect_match "VPC" "$vpc" '^vpc-[0-9a-f]{17}$'
ec2 wait vpc-available --vpc-ids "$vpc"
ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-hostnames '{"Value":true}'

public=$(ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.0.1.0/24 --availability-zone us-east-1a --query Subnet.SubnetId)
private=$(ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.0.2.0/24 --availability-zone us-east-1b --query Subnet.SubnetId)
expect_match "public subnet" "$public" '^subnet-[0-9a-f]{17}$'
ec2 wait subnet-available --subnet-ids "$public" "$private"
expect_error "overlapping subnet" InvalidSubnet.Conflict \
  ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.0.1.128/25
ec2 modify-subnet-attribute --subnet-id "$public" --map-public-ip-on-launch
expect "public subnet maps public IPs" \
  "$(ec2 describe-subnets --subnet-ids "$public" --query 'Subnets[0].[MapPublicIpOnLaunch,AvailableIpAddressCount]')" $'True\t251'

igw=$(ec2 create-internet-gateway --query InternetGateway.InternetGatewayId)
ec2 attach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$vpc"
expect "gateway attached" \
  "$(ec2 describe-internet-gateways --internet-gateway-ids "$igw" --query 'InternetGateways[0].Attachments[0].[VpcId,State]')" "$vpc"$'\tavailable'

public_table=$(ec2 create-route-table --vpc-id "$vpc" --query RouteTable.RouteTableId)
ec2 create-route --route-table-id "$public_table" --destination-cidr-block 0.0.0.0/0 --gateway-id "$igw" > /dev/null
public_association=$(ec2 associate-route-table --route-table-id "$public_table" --subnet-id "$public" --query AssociationId)
expect_match "public table associated" "$public_association" '^rtbassoc-[0-9a-f]{17}$'

allocation=$(ec2 allocate-address --domain vpc --query AllocationId)
nat=$(ec2 create-nat-gateway --subnet-id "$public" --allocation-id "$allocation" --query NatGateway.NatGatewayId)
expect_match "NAT gateway" "$nat" '^nat-[0-9a-f]{17}$'
ec2 wait nat-gateway-available --nat-gateway-ids "$nat"
main_table=$(ec2 describe-route-tables --filters "Name=vpc-id,Values=$vpc" Name=association.main,Values=true \
  --query 'RouteTables[0].RouteTableId')
ec2 create-route --route-table-id "$main_table" --destination-cidr-block 0.0.0.0/0 --nat-gateway-id "$nat" > /dev/null
expect "private subnet routes through the NAT gateway" \
  "$(ec2 describe-route-tables --route-table-ids "$main_table" --query 'RouteTables[0].Routes[?DestinationCidrBlock==`0.0.0.0/0`].[NatGatewayId,State]')" \
  "$nat"$'\tactive'

group=$(ec2 create-security-group --group-name web --description "web tier" --vpc-id "$vpc" --query GroupId)
ec2 authorize-security-group-ingress --group-id "$group" --protocol tcp --port 443 --cidr 0.0.0.0/0 > /dev/null
web=$(ec2 run-instances --image-id ami-0b1c2d3e4f5a6b7c8 --instance-type t3.micro --count 1 \
  --subnet-id "$public" --security-group-ids "$group" --query 'Instances[0].InstanceId')
# The worker from a launch template, its subnet given at launch.
template=$(ec2 create-launch-template --launch-template-name worker \
  --launch-template-data '{"ImageId":"ami-0b1c2d3e4f5a6b7c8","InstanceType":"t3.micro"}' \
  --query LaunchTemplate.LaunchTemplateId)
worker=$(ec2 run-instances --launch-template LaunchTemplateName=worker,Version='$Latest' --count 1 \
  --subnet-id "$private" --query 'Instances[0].InstanceId')
ec2 wait instance-running --instance-ids "$web" "$worker"
expect_match "web instance in the public subnet" \
  "$(ec2 describe-instances --instance-ids "$web" --query 'Reservations[0].Instances[0].[VpcId,SubnetId,Placement.AvailabilityZone,PrivateIpAddress]')" \
  "^$vpc"$'\t'"$public"$'\tus-east-1a\t10\.0\.1\.[0-9]+$'
expect_match "worker in the private subnet with the VPC's default group" \
  "$(ec2 describe-instances --instance-ids "$worker" --query 'Reservations[0].Instances[0].[SubnetId,SecurityGroups[0].GroupName,PrivateIpAddress]')" \
  "^$private"$'\tdefault\t10\.0\.2\.[0-9]+$'
expect "worker launched from the template" \
  "$(ec2 describe-instances --instance-ids "$worker" --query 'Reservations[0].Instances[0].[InstanceType,ImageId]')" \
  $'t3.micro\tami-0b1c2d3e4f5a6b7c8'
expect_error "the VPC cannot go while it holds things" DependencyViolation ec2 delete-vpc --vpc-id "$vpc"

# A second interface for the web instance, with an Elastic IP of its own.
eni=$(ec2 create-network-interface --subnet-id "$public" --groups "$group" --description "web public" \
  --query NetworkInterface.NetworkInterfaceId)
ec2 wait network-interface-available --network-interface-ids "$eni"
eni_attachment=$(ec2 attach-network-interface --network-interface-id "$eni" --instance-id "$web" \
  --device-index 1 --query AttachmentId)
eni_address=$(ec2 allocate-address --domain vpc --query AllocationId)
eni_association=$(ec2 associate-address --allocation-id "$eni_address" --network-interface-id "$eni" \
  --query AssociationId)
expect "the Elastic IP is on the interface, attached to the web instance" \
  "$(ec2 describe-addresses --allocation-ids "$eni_address" --query 'Addresses[0].[NetworkInterfaceId,InstanceId,AssociationId]')" \
  "$eni"$'\t'"$web"$'\t'"$eni_association"
expect "the web instance shows both interfaces, by device index" \
  "$(ec2 describe-instances --instance-ids "$web" --query 'Reservations[0].Instances[0].NetworkInterfaces[].[Attachment.DeviceIndex,NetworkInterfaceId==`'"$eni"'`]' | sort | tr '\n' ' ')" \
  $'0\tFalse 1\tTrue '
expect_error "an attached interface is not deleted" InvalidNetworkInterface.InUse \
  ec2 delete-network-interface --network-interface-id "$eni"

# Bake an image of the web instance (with a data volume) and launch from it.
volume=$(ec2 create-volume --availability-zone us-east-1a --size 5 --query VolumeId)
ec2 wait volume-available --volume-ids "$volume"
ec2 attach-volume --volume-id "$volume" --instance-id "$web" --device /dev/sdf > /dev/null
ec2 wait volume-in-use --volume-ids "$volume"
image=$(ec2 create-image --instance-id "$web" --name web-baked --no-reboot --query ImageId)
ec2 wait image-available --image-ids "$image"
snapshot=$(ec2 describe-images --image-ids "$image" --query 'Images[0].BlockDeviceMappings[?DeviceName==`/dev/sdf`].Ebs.SnapshotId')
expect_match "baked image maps a snapshot of the data volume" "$snapshot" '^snap-[0-9a-f]{17}$'
root_snapshot=$(ec2 describe-images --image-ids "$image" --query 'Images[0].BlockDeviceMappings[?DeviceName==`/dev/xvda`].Ebs.SnapshotId')
expect_match "and one of the root volume" "$root_snapshot" '^snap-[0-9a-f]{17}$'
baked=$(ec2 run-instances --image-id "$image" --instance-type t3.micro --count 1 \
  --subnet-id "$private" --query 'Instances[0].InstanceId')
ec2 wait instance-running --instance-ids "$baked"
expect "instance launched from the baked image" \
  "$(ec2 describe-instances --instance-ids "$baked" --query 'Reservations[0].Instances[0].ImageId')" "$image"
# Its data volume comes from the image's snapshot and, as the web
# instance's was, is kept at termination.
baked_data=$(ec2 describe-instances --instance-ids "$baked" \
  --query 'Reservations[0].Instances[0].BlockDeviceMappings[?DeviceName==`/dev/sdf`].Ebs.VolumeId')
expect "the baked instance's data volume is of the image's snapshot" \
  "$(ec2 describe-volumes --volume-ids "$baked_data" --query 'Volumes[0].[SnapshotId,Size]')" "$snapshot"$'\t5'

# A Windows instance: its password, decrypted by the CLI with the key pair.
ec2 create-key-pair --key-name windows-admin --key-type rsa --query KeyMaterial > "$work/windows.pem"
windows=$(ec2 run-instances --image-id ami-0f0e0d0c0b0a09080 --instance-type t3.micro --count 1 \
  --subnet-id "$public" --key-name windows-admin --query 'Instances[0].InstanceId')
ec2 wait password-data-available --instance-id "$windows"
expect_match "Windows password decrypted with --priv-launch-key" \
  "$(ec2 get-password-data --instance-id "$windows" --priv-launch-key "$work/windows.pem" --query PasswordData)" '^[[:graph:]]{32}$'

# Tear down, in the order EC2 requires.
ec2 disassociate-address --association-id "$eni_association"
ec2 detach-network-interface --attachment-id "$eni_attachment"
ec2 wait network-interface-available --network-interface-ids "$eni"
ec2 delete-network-interface --network-interface-id "$eni"
ec2 release-address --allocation-id "$eni_address"
ec2 terminate-instances --instance-ids "$web" "$worker" "$windows" "$baked" > /dev/null
ec2 wait instance-terminated --instance-ids "$web" "$worker" "$windows" "$baked"
ec2 delete-key-pair --key-name windows-admin > /dev/null
ec2 delete-launch-template --launch-template-id "$template" > /dev/null
ec2 deregister-image --image-id "$image"
ec2 delete-snapshot --snapshot-id "$snapshot"
ec2 delete-snapshot --snapshot-id "$root_snapshot"
ec2 delete-volume --volume-id "$baked_data"
ec2 wait volume-available --volume-ids "$volume"
ec2 delete-volume --volume-id "$volume"
ec2 delete-security-group --group-id "$group"
ec2 delete-nat-gateway --nat-gateway-id "$nat" > /dev/null
ec2 wait nat-gateway-deleted --nat-gateway-ids "$nat"
ec2 delete-route --route-table-id "$main_table" --destination-cidr-block 0.0.0.0/0
ec2 release-address --allocation-id "$allocation"
ec2 disassociate-route-table --association-id "$public_association"
ec2 delete-route-table --route-table-id "$public_table"
ec2 detach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$vpc"
ec2 delete-internet-gateway --internet-gateway-id "$igw"
ec2 delete-subnet --subnet-id "$public"
ec2 delete-subnet --subnet-id "$private"
ec2 delete-vpc --vpc-id "$vpc"

expect_error "the VPC is gone" InvalidVpcID.NotFound ec2 describe-vpcs --vpc-ids "$vpc"
expect "no subnet left in it" "$(ec2 describe-subnets --filters "Name=vpc-id,Values=$vpc" --query 'length(Subnets)')" "0"
expect "no route table left in it" "$(ec2 describe-route-tables --filters "Name=vpc-id,Values=$vpc" --query 'length(RouteTables)')" "0"
expect "no group left in it" "$(ec2 describe-security-groups --filters "Name=vpc-id,Values=$vpc" --query 'length(SecurityGroups)')" "0"
expect "only the default VPC's gateway left" "$(ec2 describe-internet-gateways --query 'length(InternetGateways)')" "1"
expect "no network interface left in it" "$(ec2 describe-network-interfaces --filters "Name=vpc-id,Values=$vpc" --query 'length(NetworkInterfaces)')" "0"
expect "no launch template left" "$(ec2 describe-launch-templates --query 'length(LaunchTemplates)')" "0"
expect "no address left" "$(ec2 describe-addresses --query 'length(Addresses)')" "0"
expect "no image, snapshot or volume left" \
  "$(ec2 describe-images --owners self --query 'length(Images)') $(ec2 describe-snapshots --owner-ids self --query 'length(Snapshots)') $(ec2 describe-volumes --query 'length(Volumes)')" "0 0 0"
echo "all checks passed"
