#!/usr/bin/env bash
# Real instances (the agent's namespace driver) driven with the AWS CLI, as
# a user would: a key pair, an instance whose user-data script writes a
# file and prints a line, the console showing the line, ssh with the key
# (from inside the VPC's namespace, through `ec2-gateway agent vpc-exec`)
# reading the file, stop and start keeping it, and terminate leaving
# nothing on the machine. Then two instances in a created VPC reaching
# each other until the ingress rule is revoked, and again once it is
# authorized; and the limits: no host process or file in sight, no mount
# or network change for the instance's root, memory capped at the type's.
# Needs EC2_GATEWAY_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# EC2_GATEWAY_BINARY, IMAGE_ID, TAR_IMAGE_ID (the same image as a tar
# archive), AGENT_STATE_DIR, HOST_SECRET_FILE (a file
# of the machine no instance may read) and HOST_CANARY_DIR (an empty folder
# of the machine nothing may write to).
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
# ssh_to <vpc> <address> <command>: as ec2-user, with the key pair's key.
ssh_to() {
  "$EC2_GATEWAY_BINARY" agent vpc-exec "$1" -- ssh -i "$work/key.pem" -o BatchMode=yes \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o ConnectTimeout=5 "ec2-user@$2" "$3"
}
# until_true <what> <command...>: polls for up to 20 s.
until_true() {
  local what=$1; shift
  for _ in $(seq 1 40); do
    if "$@" > /dev/null 2>&1; then echo "ok   $what"; return 0; fi
    sleep 0.5
  done
  echo "FAIL $what: still false after 20 s"; exit 1
}
# until_says <what> <wanted> <command...>: polls for up to 20 s until the
# command prints exactly <wanted>.
until_says() {
  local what=$1 wanted=$2 got=""; shift 2
  for _ in $(seq 1 40); do
    got=$("$@" 2>/dev/null || true)
    if [ "$got" = "$wanted" ]; then echo "ok   $what"; return 0; fi
    sleep 0.5
  done
  echo "FAIL $what: last said '$got', wanted '$wanted'"; exit 1
}
wait_state() { # wait_state <instance> <state>: at most 60 s
  for _ in $(seq 1 120); do
    [ "$(ec2 describe-instances --instance-ids "$1" --query 'Reservations[0].Instances[0].State.Name')" = "$2" ] && return 0
    sleep 0.5
  done
  echo "FAIL $1 never became $2"; exit 1
}
# Nothing of the instance is left on the machine.
nothing_left() { # nothing_left <instance> <vpc>
  local id=$1
  expect "$id: its network namespace is gone" "$(ip netns list | grep -c -- "ec2-$id" || true)" 0
  expect "$id: its veth is gone" "$(ip -n "ec2-$2" link 2>/dev/null | grep -c "ve${id: -13}" || true)" 0
  expect "$id: its files are gone" "$(test -e "$AGENT_STATE_DIR/instances/$id" && echo left || echo gone)" gone
  expect "$id: its cgroups are gone" "$(find /sys/fs/cgroup -maxdepth 3 -name "$id" | wc -l)" 0
  expect "$id: no mount names it" "$(grep -c -- "$id" /proc/mounts || true)" 0
  expect "$id: no process runs for it" "$(pgrep -f -- "$id" | wc -l)" 0
}

ec2 create-key-pair --key-name real-key --query KeyMaterial > "$work/key.pem"
chmod 600 "$work/key.pem"
expect "key pair" "$(head -1 "$work/key.pem")" "-----BEGIN RSA PRIVATE KEY-----"

cat > "$work/user-data.sh" <<'EOF'
#!/bin/sh
echo "made by user data on $(hostname)" > /var/tmp/from-user-data
chmod 644 /var/tmp/from-user-data
echo "USER-DATA-SAYS: hello from the first boot"
if mount -t tmpfs none /mnt 2>/dev/null; then echo "ROOT-CAN: mount"; else echo "ROOT-CANNOT: mount"; fi
if ip addr add 192.0.2.9/32 dev eth0 2>/dev/null; then echo "ROOT-CAN: configure the network"; else echo "ROOT-CANNOT: configure the network"; fi
EOF
# A hostile root plants links in its layer, to a folder of the machine,
# where the agent or the next boot's setup might write or mount.
for planted in /var/lib/ec2/authorized_keys /var/lib/ec2/booted /etc/hostname /.oldroot; do
  echo "ln -sfn '$HOST_CANARY_DIR' $planted" >> "$work/user-data.sh"
done
echo "rm -rf /tmp && ln -sfn '$HOST_CANARY_DIR' /tmp" >> "$work/user-data.sh"
echo "echo USER-DATA-DONE" >> "$work/user-data.sh"

# 1. One instance in the default VPC: user data, console, ssh, stop/start.
default_group=$(ec2 describe-security-groups --group-names default --query 'SecurityGroups[0].GroupId')
ec2 authorize-security-group-ingress --group-id "$default_group" --protocol tcp --port 22 --cidr 0.0.0.0/0 > /dev/null
read -r first first_ip first_vpc < <(ec2 run-instances --image-id "$IMAGE_ID" --instance-type t2.nano \
  --key-name real-key --user-data "file://$work/user-data.sh" \
  --query 'Instances[0].[InstanceId,PrivateIpAddress,VpcId]')
expect_match "launched" "$first" '^i-[0-9a-f]{17}$'
ec2 wait instance-running --instance-ids "$first"
echo "ok   running"
console() { ec2 get-console-output --instance-id "$1" --query Output; }
until_true "the console shows the user data's line" \
  bash -c "$(declare -f ec2 console); console $first | grep -q 'USER-DATA-SAYS: hello from the first boot'"
until_true "the user data finished" bash -c "$(declare -f ec2 console); console $first | grep -q 'USER-DATA-DONE'"
expect "the user data ran as a root without mount rights" "$(console "$first" | grep -c 'ROOT-CANNOT: mount')" 1
expect "the user data ran as a root without network rights" "$(console "$first" | grep -c 'ROOT-CANNOT: configure the network')" 1
expect "ssh reads the user data's file" "$(ssh_to "$first_vpc" "$first_ip" 'cat /var/tmp/from-user-data')" \
  "made by user data on ip-${first_ip//./-}"
expect "the hostname is the private DNS name's" "$(ssh_to "$first_vpc" "$first_ip" hostname)" "ip-${first_ip//./-}"
expect "IPv6 is off inside (only the IPv4 firewall exists)" "$(ssh_to "$first_vpc" "$first_ip" 'cat /proc/sys/net/ipv6/conf/all/disable_ipv6')" 1
expect "eth0 has the MAC address its port is pinned to" \
  "$(ssh_to "$first_vpc" "$first_ip" 'cat /sys/class/net/eth0/address 2>/dev/null || ip link show eth0 | sed -n "s/.*ether \([0-9a-f:]*\).*/\1/p"')" \
  "02:$(echo "${first: -10}" | sed 's/../&:/g; s/:$//')"
expect "no host file in sight" "$(ssh_to "$first_vpc" "$first_ip" "test -e '$HOST_SECRET_FILE' && echo seen || echo unseen")" unseen
expect "the instance's PID 1 is its init" "$(ssh_to "$first_vpc" "$first_ip" 'cat /proc/1/cmdline | tr "\0" " "')" "/bin/sh /sbin/ec2-init "
processes=$(ssh_to "$first_vpc" "$first_ip" 'ls /proc | grep -c "^[0-9]"')
if [ "$processes" -gt 12 ]; then echo "FAIL the instance sees $processes processes"; exit 1; fi
expect "no host process in sight ($processes processes)" "$(ssh_to "$first_vpc" "$first_ip" 'ps -o comm' | grep -c -E 'ec2-gateway|cargo|sshd|aws' || true)" 0
expect "a memory hog over the type's 512 MiB is killed" \
  "$(ssh_to "$first_vpc" "$first_ip" 'head -c 700000000 /dev/zero | tail > /dev/null; echo $?')" 137
expect "100 MB fits" "$(ssh_to "$first_vpc" "$first_ip" 'head -c 100000000 /dev/zero | tail > /dev/null; echo $?')" 0
ssh_to "$first_vpc" "$first_ip" 'echo "written before the stop" > /home/ec2-user/note'
ec2 stop-instances --instance-ids "$first" > /dev/null
wait_state "$first" stopped
echo "ok   stopped"
expect "nothing of it runs while stopped" \
  "$(find /sys/fs/cgroup -path "*ec2-gateway/$first/cgroup.procs" -exec cat {} + | wc -l)" 0
ec2 start-instances --instance-ids "$first" > /dev/null
wait_state "$first" running
echo "ok   started again"
expect "the file written before the stop is kept" "$(ssh_to "$first_vpc" "$first_ip" 'cat /home/ec2-user/note')" "written before the stop"
expect "a start wrote or mounted nothing through links the instance planted" "$(ls -A "$HOST_CANARY_DIR" | wc -l)" 0
expect "the next boot made /tmp a folder again" "$(ssh_to "$first_vpc" "$first_ip" 'test -d /tmp && ! test -L /tmp && echo folder')" folder
ec2 reboot-instances --instance-ids "$first"
until_true "a reboot restarts init (a third boot on the console)" \
  bash -c "$(declare -f ec2 console); [ \$(console $first | grep -c 'ec2-init: booting') -ge 3 ]"
until_true "ssh works again after the reboot" ssh_to "$first_vpc" "$first_ip" true
expect "the reboot kept the instance running" \
  "$(ec2 describe-instances --instance-ids "$first" --query 'Reservations[0].Instances[0].State.Name')" running
expect "the file written before the stop is still there" "$(ssh_to "$first_vpc" "$first_ip" 'cat /home/ec2-user/note')" "written before the stop"
expect "the user data ran once" "$(console "$first" | grep -c 'USER-DATA-SAYS')" 1
ec2 terminate-instances --instance-ids "$first" > /dev/null
wait_state "$first" terminated
echo "ok   terminated"
nothing_left "$first" "$first_vpc"
expect "its VPC namespace is gone with its last instance" "$(ip netns list | grep -c -- "ec2-$first_vpc" || true)" 0

# 2. Two instances in a created VPC, under a group that lets its members in.
vpc=$(ec2 create-vpc --cidr-block 10.20.0.0/16 --query Vpc.VpcId)
subnet=$(ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.20.1.0/24 --availability-zone us-east-1a --query Subnet.SubnetId)
group=$(ec2 create-security-group --group-name pair --description "two instances" --vpc-id "$vpc" --query GroupId)
ec2 authorize-security-group-ingress --group-id "$group" --protocol tcp --port 22 --cidr 0.0.0.0/0 > /dev/null
ec2 authorize-security-group-ingress --group-id "$group" --ip-permissions \
  "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$group}]" > /dev/null
cat > "$work/server.sh" <<'EOF'
#!/bin/sh
nc -ll -p 8080 -e echo pong &
echo "SERVER-LISTENING on 8080"
EOF
read -r a a_ip < <(ec2 run-instances --image-id "$IMAGE_ID" --instance-type t2.nano --key-name real-key \
  --subnet-id "$subnet" --security-group-ids "$group" --query 'Instances[0].[InstanceId,PrivateIpAddress]')
read -r b b_ip < <(ec2 run-instances --image-id "$IMAGE_ID" --instance-type t2.nano --key-name real-key \
  --subnet-id "$subnet" --security-group-ids "$group" --user-data "file://$work/server.sh" \
  --query 'Instances[0].[InstanceId,PrivateIpAddress]')
# A third in another subnet of the VPC, from the image as a tar archive.
other_subnet=$(ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.20.2.0/24 --availability-zone us-east-1a --query Subnet.SubnetId)
read -r c c_ip < <(ec2 run-instances --image-id "$TAR_IMAGE_ID" --instance-type t2.nano --key-name real-key \
  --subnet-id "$other_subnet" --security-group-ids "$group" --query 'Instances[0].[InstanceId,PrivateIpAddress]')
ec2 wait instance-running --instance-ids "$a" "$b" "$c"
echo "ok   three instances running in $vpc ($a_ip, $b_ip; $c_ip from the tar archive)"
ping_c() { ssh_to "$vpc" "$a_ip" "/bin/ping -c 1 -W 1 $c_ip > /dev/null 2>&1 && echo reached || echo silent"; }
until_says "a pings c in the VPC's other subnet" reached ping_c
expect "c runs the unpacked archive" "$(ssh_to "$vpc" "$c_ip" 'head -1 /etc/ec2-image-packages | cut -d" " -f1')" busybox-static
ec2 terminate-instances --instance-ids "$c" > /dev/null
wait_state "$c" terminated
nothing_left "$c" "$vpc"
# (/bin/ping: a bare `ping` is busybox sh's own applet, without the capability.)
# Each prints `reached` or `silent` from a's side; a failed ssh prints
# nothing, which is neither.
ping_b() { ssh_to "$vpc" "$a_ip" "/bin/ping -c 1 -W 1 $b_ip > /dev/null 2>&1 && echo reached || echo silent"; }
tcp_b() { ssh_to "$vpc" "$a_ip" "[ \"\$(nc -w 2 $b_ip 8080 < /dev/null)\" = pong ] && echo reached || echo silent"; }
until_says "a pings b" reached ping_b
until_says "a reaches b's TCP port" reached tcp_b
ec2 revoke-security-group-ingress --group-id "$group" --ip-permissions \
  "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$group}]" > /dev/null
until_says "revoked: a no longer pings b" silent ping_b
until_says "revoked: a no longer reaches b's TCP port" silent tcp_b
ec2 authorize-security-group-ingress --group-id "$group" --ip-permissions \
  "IpProtocol=tcp,FromPort=8080,ToPort=8080,IpRanges=[{CidrIp=10.20.1.0/24}]" > /dev/null
until_says "authorized tcp/8080: a reaches b's TCP port" reached tcp_b
expect "authorized tcp/8080 only: a still cannot ping b" "$(ping_b)" silent
ec2 authorize-security-group-ingress --group-id "$group" --ip-permissions \
  "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$group}]" > /dev/null
until_says "authorized again: a pings b" reached ping_b
# Egress is enforced too, at the sender.
ec2 revoke-security-group-egress --group-id "$group" --ip-permissions 'IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]' > /dev/null
until_says "egress revoked: a no longer pings b" silent ping_b
ping_a_from_b() { ssh_to "$vpc" "$b_ip" "/bin/ping -c 1 -W 1 $a_ip > /dev/null 2>&1 && echo reached || echo silent"; }
expect "egress revoked: b no longer pings a (whatever the order of their rules)" "$(ping_a_from_b)" silent
ec2 authorize-security-group-egress --group-id "$group" --ip-permissions \
  "IpProtocol=icmp,FromPort=-1,ToPort=-1,UserIdGroupPairs=[{GroupId=$group}]" > /dev/null
until_says "egress of ICMP to the group authorized: a pings b" reached ping_b
expect "no TCP egress authorized: a cannot reach b's TCP port" "$(tcp_b)" silent
ec2 terminate-instances --instance-ids "$a" "$b" > /dev/null
wait_state "$a" terminated
wait_state "$b" terminated
nothing_left "$a" "$vpc"
nothing_left "$b" "$vpc"
expect "the created VPC's namespace is gone" "$(ip netns list | grep -c -- "ec2-$vpc" || true)" 0
echo "all checks passed"
