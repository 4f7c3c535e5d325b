#!/usr/bin/env bash
# Create or update a berth cluster on AWS from cloudformation/berth.yaml, with
# change sets, wait for it, print the failure events if it fails, then list
# each group's instances with their public and private addresses.
# Safe to run twice: an unchanged stack is reported and left alone.
set -euo pipefail

usage() {
  cat <<USAGE
usage: $(basename "$0") -d DOMAIN -r REGION -k KEY -i AMI -u BERTH_URL [-n NAME] [-z ZONE_ID] [-s SSH_CIDR] [-p Param=Value]...

  -d DOMAIN     domain the apps are served under (Route53 zone must exist)
  -r REGION     AWS region, e.g. eu-west-1
  -k KEY        EC2 key pair name for ssh
  -i AMI        Flatcar Container Linux AMI id of that region (docs/cloud.md)
  -u BERTH_URL  https URL of the berth binary the nodes install
  -n NAME       stack name (default: berth-<domain with dots as dashes>)
  -z ZONE_ID    Route53 hosted zone id (default: looked up from DOMAIN)
  -s SSH_CIDR   CIDR allowed to ssh to the nodes (default: 0.0.0.0/0 -- narrow it)
  -p P=V        any other template parameter (ServerCount=5, WorkerDesired=3, ...), repeatable
  -h            this help
USAGE
}

present() { [ -n "$1" ] && [ "$1" != "None" ]; }
die() { echo "create-stack: $*" >&2; exit 1; }

domain="" region="" key="" ami="" url="" name="" zone="" ssh_cidr="0.0.0.0/0"
extra=()
while getopts "d:r:k:i:u:n:z:s:p:h" opt; do
  case $opt in
    d) domain=$OPTARG ;;
    r) region=$OPTARG ;;
    k) key=$OPTARG ;;
    i) ami=$OPTARG ;;
    u) url=$OPTARG ;;
    n) name=$OPTARG ;;
    z) zone=$OPTARG ;;
    s) ssh_cidr=$OPTARG ;;
    p) extra+=("$OPTARG") ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
missing=()
[ -n "$domain" ] || missing+=(-d DOMAIN)
[ -n "$region" ] || missing+=(-r REGION)
[ -n "$key" ] || missing+=(-k KEY)
[ -n "$ami" ] || missing+=(-i AMI)
[ -n "$url" ] || missing+=(-u BERTH_URL)
if [ ${#missing[@]} -gt 0 ]; then
  usage >&2
  die "missing ${missing[*]}"
fi
command -v aws >/dev/null || die "the aws CLI is not installed (https://aws.amazon.com/cli/)"
[ -n "$name" ] || name="berth-${domain//./-}"
template="$(cd "$(dirname "$0")/.." && pwd)/cloudformation/berth.yaml"
[ -f "$template" ] || die "template not found: $template"
export AWS_DEFAULT_REGION=$region

if [ -z "$zone" ]; then
  zone=$(aws route53 list-hosted-zones-by-name --dns-name "$domain" --max-items 1 \
    --query "HostedZones[?Name=='$domain.'].Id | [0]" --output text)
  present "$zone" || die "no Route53 hosted zone for $domain (create one, or pass -z)"
  zone=${zone#/hostedzone/}
fi

params=(
  "ParameterKey=DomainName,ParameterValue=$domain"
  "ParameterKey=HostedZoneId,ParameterValue=$zone"
  "ParameterKey=KeyName,ParameterValue=$key"
  "ParameterKey=ImageId,ParameterValue=$ami"
  "ParameterKey=BerthURL,ParameterValue=$url"
  "ParameterKey=SSHLocation,ParameterValue=$ssh_cidr"
)
for p in "${extra[@]}"; do
  [[ $p == *=* ]] || die "-p takes Param=Value, got $p"
  params+=("ParameterKey=${p%%=*},ParameterValue=${p#*=}")
done

if aws cloudformation describe-stacks --stack-name "$name" >/dev/null 2>&1; then
  type=UPDATE
else
  type=CREATE
fi
changeset="berth-$(date +%Y%m%d%H%M%S)"
echo "create-stack: $type $name in $region (change set $changeset)"
aws cloudformation create-change-set --stack-name "$name" --change-set-name "$changeset" \
  --change-set-type "$type" --template-body "file://$template" --parameters "${params[@]}" \
  --capabilities CAPABILITY_IAM --tags "Key=berth:stack,Value=$name" >/dev/null

if ! aws cloudformation wait change-set-create-complete --stack-name "$name" --change-set-name "$changeset" 2>/dev/null; then
  reason=$(aws cloudformation describe-change-set --stack-name "$name" --change-set-name "$changeset" \
    --query StatusReason --output text)
  if [[ $reason == *"didn't contain changes"* || $reason == *"No updates"* ]]; then
    echo "create-stack: $name is up to date (no changes)"
    aws cloudformation delete-change-set --stack-name "$name" --change-set-name "$changeset"
  else
    die "change set failed: $reason"
  fi
else
  aws cloudformation execute-change-set --stack-name "$name" --change-set-name "$changeset"
  wait_for=stack-create-complete
  [ "$type" = UPDATE ] && wait_for=stack-update-complete
  echo "create-stack: waiting for $wait_for (this takes several minutes)..."
  if ! aws cloudformation wait "$wait_for" --stack-name "$name"; then
    echo "create-stack: the stack failed; these events say why:" >&2
    aws cloudformation describe-stack-events --stack-name "$name" \
      --query "StackEvents[?contains(ResourceStatus, 'FAILED')].[Timestamp,LogicalResourceId,ResourceStatus,ResourceStatusReason]" \
      --output text >&2
    exit 1
  fi
fi

output() {
  aws cloudformation describe-stacks --stack-name "$name" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text
}
echo "load balancer: $(output LoadBalancerDNSName)"
for group in ServerGroupName WorkerGroupName; do
  asg=$(output "$group")
  echo "$group: $asg"
  ids=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$asg" \
    --query 'AutoScalingGroups[0].Instances[].InstanceId' --output text)
  if [ -z "$ids" ] || [ "$ids" = "None" ]; then
    echo "  (no instances yet)"
    continue
  fi
  # shellcheck disable=SC2086 # one argument per instance id
  aws ec2 describe-instances --instance-ids $ids \
    --query 'Reservations[].Instances[].[InstanceId,PublicIpAddress,PrivateIpAddress]' --output text |
    while read -r id public private; do printf '  %s  public %s  private %s\n' "$id" "$public" "$private"; done
done
echo "next: bin/tunnel.sh -n $name -r $region"
