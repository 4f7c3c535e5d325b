#!/usr/bin/env bash
# Open an ssh tunnel to a server node's etcd and print the exports for berth,
# etcdctl and fleetctl (the server is also the ssh jump host of berth fleet
# status and journal: BERTH_TUNNEL). etcd serves TLS with client
# certificates: the exports name the CA and berth-operator's certificate that
# create-stack.sh made (-P, default ~/.config/berth/NAME/pki).
#   eval "$(bin/tunnel.sh -n berth-example-com -r eu-west-1)"
set -euo pipefail

usage() {
  cat <<USAGE
usage: $(basename "$0") -n NAME -r REGION [-l LOCAL_PORT] [-i SSH_KEY] [-u USER] [-P PKI_DIR]

  -n NAME        stack name (as given to create-stack.sh)
  -r REGION      AWS region
  -l LOCAL_PORT  local port of the tunnel (default 2379)
  -i SSH_KEY     ssh identity file
  -u USER        ssh user (default core)
  -P PKI_DIR     the stack's CA and certificates (default ~/.config/berth/NAME/pki)
  -h             this help
USAGE
}
present() { [ -n "$1" ] && [ "$1" != "None" ]; }
die() { echo "tunnel: $*" >&2; exit 1; }

name="" region="" port=2379 identity="" user=core pki=""
while getopts "n:r:l:i:u:P:h" opt; do
  case $opt in
    n) name=$OPTARG ;;
    r) region=$OPTARG ;;
    l) port=$OPTARG ;;
    i) identity=$OPTARG ;;
    u) user=$OPTARG ;;
    P) pki=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
if [ -z "$name" ] || [ -z "$region" ]; then usage >&2; echo "tunnel: missing -n NAME or -r REGION" >&2; exit 2; fi
command -v aws >/dev/null || die "the aws CLI is not installed"
command -v ssh >/dev/null || die "ssh is not installed"
export AWS_DEFAULT_REGION=$region

asg=$(aws cloudformation describe-stacks --stack-name "$name" \
  --query "Stacks[0].Outputs[?OutputKey=='ServerGroupName'].OutputValue | [0]" --output text) ||
  die "no stack $name in $region (bin/create-stack.sh makes it)"
present "$asg" || die "stack $name has no ServerGroupName output"
[ -n "$pki" ] || pki=${XDG_CONFIG_HOME:-$HOME/.config}/berth/$name/pki
for f in ca.pem berth-operator.pem berth-operator-key.pem; do
  [ -f "$pki/$f" ] || die "no $pki/$f: etcd wants a client certificate (create-stack.sh makes them; or pass -P PKI_DIR)"
done
id=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$asg" \
  --query "AutoScalingGroups[0].Instances[?LifecycleState=='InService'].InstanceId | [0]" --output text)
present "$id" || die "no server in service in $asg"
ip=$(aws ec2 describe-instances --instance-ids "$id" \
  --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
present "$ip" || die "server $id has no public address"

args=(-f -N -o ExitOnForwardFailure=yes -o StrictHostKeyChecking=accept-new -L "127.0.0.1:$port:127.0.0.1:2379")
[ -n "$identity" ] && args+=(-i "$identity")
# shellcheck disable=SC2029 # user@host is meant to expand here
ssh "${args[@]}" "$user@$ip" || die "ssh to $user@$ip failed"
echo "# tunnel to etcd on $id ($ip) at 127.0.0.1:$port" >&2
cat <<EXPORTS
export BERTH_ETCD_ENDPOINTS=https://127.0.0.1:$port
export BERTH_ETCD_CACERT=$pki/ca.pem
export BERTH_ETCD_CERT=$pki/berth-operator.pem
export BERTH_ETCD_KEY=$pki/berth-operator-key.pem
export ETCDCTL_API=3
export ETCDCTL_ENDPOINTS=https://127.0.0.1:$port
export ETCDCTL_CACERT=$pki/ca.pem
export ETCDCTL_CERT=$pki/berth-operator.pem
export ETCDCTL_KEY=$pki/berth-operator-key.pem
export FLEETCTL_TUNNEL=$ip
export BERTH_TUNNEL=$user@$ip
EXPORTS
