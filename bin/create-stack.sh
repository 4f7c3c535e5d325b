#!/usr/bin/env bash
# Create or update a berth cluster on AWS from cloudformation/berth.yaml.
#
# With -d, -r and -k it does the rest: it picks the newest Flatcar AMI of the
# channel in the region (Flatcar's public images, owner 075585003325), builds
# this checkout's berth for linux/amd64, uploads it to the stack's S3 bucket
# (public access blocked, encrypted; the nodes fetch it with their instance
# role and Ignition checks its sha512), then creates or updates the stack
# through a change set, waits, prints the failure events if it fails, and
# lists each group's instances with their public and private addresses.
#
# etcd runs with TLS, client certificates and auth (docs/security.md): the
# first run creates a CA with "berth pki" in a directory on this machine
# (default ~/.config/berth/NAME/pki; its key never leaves it), issues the
# etcd members' and the clients' certificates, and stores the files the nodes
# need as SSM SecureString parameters under /berth/NAME/ (the nodes fetch them
# at boot with their instance role).
#
# The routers get certificates from an ACME CA (Let's Encrypt unless -a):
# on demand for the apps' exact domains, and by DNS-01 through the stack's
# Route53 zone for wildcard domains. Their settings and the key that seals
# the certificates' keys in etcd are SSM SecureString parameters under
# /berth/NAME/acme/; the key is made once, on the first run, and never
# leaves SSM again (not even to this machine).
#
# Safe to run twice: the bucket and an unchanged binary are left as they are,
# the CA and the certificates are kept and unchanged parameters not written,
# and an unchanged stack is reported and left alone.
set -euo pipefail

# Flatcar publishes its AMIs from this account as Flatcar-<channel>-<version>-hvm.
flatcar_owner=075585003325

usage() {
  cat <<USAGE
usage: $(basename "$0") -d DOMAIN -r REGION -k KEY [-i AMI] [-f FILE | -u URL -c HASH] [-b BUCKET]
                        [-n NAME] [-z ZONE_ID] [-s SSH_CIDR] [-P PKI_DIR] [-a ACME] [-e EMAIL]
                        [-p Param=Value]...

  -d DOMAIN     domain the apps are served under (its Route53 zone must exist)
  -r REGION     AWS region, e.g. eu-west-1
  -k KEY        EC2 key pair name for ssh
  -i AMI        Flatcar AMI id (default: the newest Flatcar AMI of the channel
                in REGION, x86_64; the channel is stable unless -p FlatcarChannel=beta)
  -f FILE       berth binary (linux/amd64) to upload (default: go build of this checkout)
  -u URL        https URL the nodes install berth from instead of the stack's bucket
  -c HASH       sha512-<hex> of the binary at URL (required with -u; Ignition checks it)
  -b BUCKET     S3 bucket for the binary (default: NAME-ACCOUNT-REGION, made if missing)
  -n NAME       stack name (default: berth-<domain with dots as dashes>)
  -z ZONE_ID    Route53 hosted zone id (default: looked up from DOMAIN)
  -s SSH_CIDR   CIDR allowed to ssh to the nodes (default: 0.0.0.0/0 -- narrow it)
  -P PKI_DIR    the stack's CA and certificates (default: ~/.config/berth/NAME/pki);
                the CA key stays there, the nodes' files go to SSM under /berth/NAME/
  -a ACME       ACME CA the routers get certificates from: letsencrypt (default,
                production), staging (Let's Encrypt's staging CA: untrusted
                certificates, generous rate limits; for a first try), or an
                https:// ACME directory URL
  -e EMAIL      contact of the ACME account (expiry and policy notices; default none)
  -p P=V        any other template parameter (ServerCount=5, WorkerDesired=3, ...), repeatable
  -h            this help
USAGE
}

present() { [ -n "$1" ] && [ "$1" != "None" ]; }
die() { echo "create-stack: $*" >&2; exit 1; }
bad_usage() { usage >&2; echo "create-stack: $*" >&2; exit 2; }

domain="" region="" key="" ami="" url="" hash="" file="" bucket="" name="" zone="" ssh_cidr="0.0.0.0/0" pki=""
acme=letsencrypt email=""
extra=()
while getopts "d:r:k:i:f:u:c:b:n:z:s:P:a:e:p:h" opt; do
  case $opt in
    d) domain=$OPTARG ;;
    r) region=$OPTARG ;;
    k) key=$OPTARG ;;
    i) ami=$OPTARG ;;
    f) file=$OPTARG ;;
    u) url=$OPTARG ;;
    c) hash=$OPTARG ;;
    b) bucket=$OPTARG ;;
    n) name=$OPTARG ;;
    z) zone=$OPTARG ;;
    s) ssh_cidr=$OPTARG ;;
    P) pki=$OPTARG ;;
    a) acme=$OPTARG ;;
    e) email=$OPTARG ;;
    p) extra+=("$OPTARG") ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || bad_usage "unexpected arguments: $*"
missing=()
[ -n "$domain" ] || missing+=(-d DOMAIN)
[ -n "$region" ] || missing+=(-r REGION)
[ -n "$key" ] || missing+=(-k KEY)
[ ${#missing[@]} -eq 0 ] || bad_usage "missing ${missing[*]}"
[[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || bad_usage "-r $region is not a region (eu-west-1, ...)"
[ -z "$ami" ] || [[ $ami =~ ^ami-[0-9a-f]{8,17}$ ]] || bad_usage "-i $ami is not an AMI id (ami-0123...)"
if [ -n "$url" ] || [ -n "$hash" ]; then
  if [ -z "$url" ] || [ -z "$hash" ]; then bad_usage "-u URL and -c HASH go together"; fi
  [ -z "$file" ] || bad_usage "-f FILE and -u URL exclude each other"
  [[ $url == https://?* ]] || bad_usage "-u $url is not an https URL"
  [[ $hash =~ ^sha512-[0-9a-f]{128}$ ]] || bad_usage "-c takes sha512-<128 hex digits> (sha512sum of the binary), got $hash"
fi
[ -z "$file" ] || [ -f "$file" ] || bad_usage "-f $file is not a file"
case $acme in
  letsencrypt) acme_ca=https://acme-v02.api.letsencrypt.org/directory ;;
  staging) acme_ca=https://acme-staging-v02.api.letsencrypt.org/directory ;;
  https://?*) acme_ca=$acme ;;
  *) bad_usage "-a takes letsencrypt, staging or an https:// ACME directory URL, got $acme" ;;
esac
[[ $acme_ca =~ ^https://[A-Za-z0-9.:/_~%+-]+$ ]] || bad_usage "-a $acme: the URL has characters an ACME directory URL does not"
[ -z "$email" ] || [[ $email =~ ^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$ ]] ||
  bad_usage "-e $email is not an email address (name@example.com)"
channel=stable
for p in "${extra[@]}"; do
  [[ $p == ?*=* ]] || bad_usage "-p takes Param=Value, got $p"
  if [[ $p == FlatcarChannel=* ]]; then channel=${p#*=}; fi
done
command -v aws >/dev/null || die "the aws CLI is not installed (https://aws.amazon.com/cli/)"
[ -n "$name" ] || name="berth-${domain//./-}"
root=$(cd "$(dirname "$0")/.." && pwd)
template=$root/cloudformation/berth.yaml
[ -f "$template" ] || die "template not found: $template"
export AWS_DEFAULT_REGION=$region
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$zone" ]; then
  zone=$(aws route53 list-hosted-zones-by-name --dns-name "$domain" --max-items 1 \
    --query "HostedZones[?Name=='$domain.'].Id | [0]" --output text)
  present "$zone" || die "no Route53 hosted zone for $domain (create one, or pass -z)"
  zone=${zone#/hostedzone/}
fi

if [ -z "$ami" ]; then
  found=$(aws ec2 describe-images --owners "$flatcar_owner" \
    --filters "Name=name,Values=Flatcar-$channel-*-hvm" Name=architecture,Values=x86_64 \
    Name=virtualization-type,Values=hvm Name=state,Values=available \
    --query 'sort_by(Images, &CreationDate)[-1].[ImageId,Name]' --output text)
  ami=${found%%$'\t'*}
  present "$ami" || die "no Flatcar $channel AMI (x86_64) in $region: pass -i AMI"
  echo "create-stack: Flatcar AMI $ami (${found#*$'\t'})"
fi

status=$(aws cloudformation describe-stacks --stack-name "$name" --query 'Stacks[0].StackStatus' --output text 2>/dev/null) ||
  status=NONE
case $status in
  NONE | REVIEW_IN_PROGRESS) type=CREATE ;; # REVIEW_IN_PROGRESS: an earlier create's change set failed
  ROLLBACK_COMPLETE | ROLLBACK_FAILED | CREATE_FAILED | DELETE_FAILED)
    die "stack $name is $status and cannot be updated: delete it (bin/destroy-stack.sh -n $name -r $region), then run this again" ;;
  *_IN_PROGRESS) die "stack $name is $status: run this again when it is done" ;;
  *) type=UPDATE ;;
esac

params=(
  "ParameterKey=DomainName,ParameterValue=$domain"
  "ParameterKey=HostedZoneId,ParameterValue=$zone"
  "ParameterKey=KeyName,ParameterValue=$key"
  "ParameterKey=ImageId,ParameterValue=$ami"
  "ParameterKey=SSHLocation,ParameterValue=$ssh_cidr"
)

if [ -n "$url" ]; then
  echo "create-stack: the nodes install berth from $url"
  params+=("ParameterKey=BerthURL,ParameterValue=$url" "ParameterKey=BerthHash,ParameterValue=$hash")
else
  if [ -z "$file" ]; then
    command -v go >/dev/null || die "go is needed to build berth (or pass -f FILE, or -u URL -c HASH)"
    file=$work/berth
    echo "create-stack: building berth (linux/amd64) from $root"
    (cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o "$file" ./cmd/berth) ||
      die "go build failed"
  fi
  sha=$(sha512sum "$file" | cut -d' ' -f1)
  account=$(aws sts get-caller-identity --query Account --output text)
  [ -n "$bucket" ] || bucket=$(echo "$name-$account-$region" | tr '[:upper:]' '[:lower:]')
  [[ $bucket =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "$bucket is not a valid bucket name (3-63 characters): pass -b BUCKET"
  owner=(--bucket "$bucket" --expected-bucket-owner "$account")
  if aws s3api head-bucket "${owner[@]}" >/dev/null 2>&1; then
    echo "create-stack: bucket $bucket exists"
  else
    location=()
    [ "$region" = us-east-1 ] || location=(--create-bucket-configuration "LocationConstraint=$region")
    aws s3api create-bucket --bucket "$bucket" --object-ownership BucketOwnerEnforced "${location[@]}" >/dev/null ||
      die "cannot create bucket $bucket (is the name taken by another account? pass -b BUCKET)"
    echo "create-stack: created bucket $bucket"
  fi
  # Every run, so that a bucket made by hand gets them too.
  aws s3api put-public-access-block "${owner[@]}" \
    --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  aws s3api put-bucket-encryption "${owner[@]}" \
    --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
  aws s3api put-bucket-tagging "${owner[@]}" --tagging "TagSet=[{Key=berth:stack,Value=$name}]"
  # One key per binary: nodes launched from an older launch template keep
  # finding the binary their Ignition config names.
  object=berth/linux-amd64/${sha:0:32}
  stored=$(aws s3api head-object "${owner[@]}" --key "$object" --query Metadata.sha512 --output text 2>/dev/null) ||
    stored=""
  if [ "$stored" = "$sha" ]; then
    echo "create-stack: s3://$bucket/$object is in place"
  else
    aws s3api put-object "${owner[@]}" --key "$object" --body "$file" --server-side-encryption AES256 \
      --metadata "sha512=$sha" >/dev/null
    echo "create-stack: uploaded berth to s3://$bucket/$object"
  fi
  params+=("ParameterKey=BerthBucket,ParameterValue=$bucket" "ParameterKey=BerthKey,ParameterValue=$object"
    "ParameterKey=BerthHash,ParameterValue=sha512-$sha")
fi
for p in "${extra[@]}"; do
  params+=("ParameterKey=${p%%=*},ParameterValue=${p#*=}")
done

# etcd's TLS. The members' stable addresses are the ones berth.yaml gives
# their network interfaces (all five: ServerCount may grow from 3 to 5).
etcd_ips=(10.0.1.11 10.0.2.11 10.0.1.12 10.0.2.12 10.0.1.13)
[ -n "$pki" ] || pki=${XDG_CONFIG_HOME:-$HOME/.config}/berth/$name/pki
local_berth=${BERTH_LOCAL:-}
if [ -z "$local_berth" ]; then
  command -v go >/dev/null || die "go is needed to build berth for the CA in $pki (or set BERTH_LOCAL to a berth binary for this machine)"
  local_berth=$work/berth-local
  (cd "$root" && go build -o "$local_berth" ./cmd/berth) || die "go build (berth for this machine) failed"
fi
mkdir -p "$pki"
chmod 700 "$pki"
"$local_berth" pki init "$pki" >/dev/null || die "berth pki init $pki failed"
issued=()
issue() { # NAME ARGS...: issue once; a second run keeps the files
  local cert=$1
  shift
  [ -f "$pki/$cert.pem" ] && [ -f "$pki/$cert-key.pem" ] && return 0
  "$local_berth" pki issue "$pki" --name "$cert" "$@" >/dev/null || die "berth pki issue $cert failed"
  issued+=("$cert")
}
sans=(--ip 127.0.0.1 --dns localhost)
for ip in "${etcd_ips[@]}"; do sans+=(--ip "$ip"); done
issue etcd-server --role server "${sans[@]}"
issue etcd-peer --role peer "${sans[@]}"
for user in berth-reader berth-dns berth-agent berth-operator root; do issue "$user" --role client; done
# The cluster's sealed-secrets key (docs/secrets.md): made once, kept here;
# nodes get it from SSM like their certificates.
if [ ! -f "$pki/secrets.key" ]; then
  "$local_berth" secret keygen "$pki/secrets.key" >/dev/null || die "berth secret keygen $pki/secrets.key failed"
  echo "create-stack: made the secrets key $pki/secrets.key (publish it once etcd is up: berth secret init --recipient-identity $pki/secrets.key)"
fi
if [ ${#issued[@]} -gt 0 ]; then
  echo "create-stack: issued ${issued[*]} in $pki"
else
  echo "create-stack: CA and certificates in $pki are kept"
fi
# Every node reads /berth/NAME/pki/; only the servers (etcd members, which
# add and remove members as root) read /berth/NAME/pki-server/.
# berth-operator stays here: no node needs it.
uploads=(
  pki/ca.pem pki/berth-agent.pem pki/berth-agent-key.pem pki/berth-reader.pem pki/berth-reader-key.pem pki/berth-dns.pem pki/berth-dns-key.pem pki/secrets.key
  pki-server/etcd-server.pem pki-server/etcd-server-key.pem pki-server/etcd-peer.pem pki-server/etcd-peer-key.pem
  pki-server/root.pem pki-server/root-key.pem
)
written=0
for u in "${uploads[@]}"; do
  param=/berth/$name/$u
  src=$pki/${u#*/}
  stored=$(aws ssm get-parameter --with-decryption --name "$param" --query Parameter.Value --output text 2>/dev/null) ||
    stored=""
  [ "$stored" = "$(cat "$src")" ] && continue
  # file://: the value never appears on a command line.
  aws ssm put-parameter --overwrite --name "$param" --type SecureString --value "file://$src" >/dev/null ||
    die "cannot store $param in SSM Parameter Store"
  written=$((written + 1))
done
echo "create-stack: SSM parameters under /berth/$name/: $written of ${#uploads[@]} written (SecureString)"

# The routers' ACME settings, read at boot into /etc/berth/acme (docs/cloud.md).
acme_env=$work/acme.env
{
  echo BERTH_ROUTER_ACME=1
  echo "BERTH_ROUTER_ACME_CA=$acme_ca"
  [ -z "$email" ] || echo "BERTH_ROUTER_ACME_EMAIL=$email"
  echo "BERTH_ROUTER_ACME_ROUTE53_ZONE=$zone"
} >"$acme_env"
param=/berth/$name/acme/acme.env
stored=$(aws ssm get-parameter --with-decryption --name "$param" --query Parameter.Value --output text 2>/dev/null) ||
  stored=""
if [ "$stored" = "$(cat "$acme_env")" ]; then
  echo "create-stack: ACME settings kept ($acme_ca)"
else
  aws ssm put-parameter --overwrite --name "$param" --type SecureString --value "file://$acme_env" >/dev/null ||
    die "cannot store $param in SSM Parameter Store"
  echo "create-stack: ACME settings written ($acme_ca${email:+, contact $email})"
  [ -z "$stored" ] || echo "create-stack: running nodes read them at boot: replace them, or run 'sudo systemctl restart berth-pki berth-router' on each"
fi
# The storage key: made once. Its name is asked for, never its value.
param=/berth/$name/acme/acme.key
if aws ssm get-parameter --name "$param" --query Parameter.Name --output text >/dev/null 2>&1; then
  echo "create-stack: ACME storage key kept"
else
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/acme.key")
  key_hex=$(cat "$work/acme.key")
  [[ $key_hex =~ ^[0-9a-f]{64}$ ]] || die "cannot make the ACME storage key"
  # No --overwrite: a key stored meanwhile is never replaced.
  aws ssm put-parameter --name "$param" --type SecureString --value "file://$work/acme.key" >/dev/null ||
    die "cannot store $param in SSM Parameter Store"
  rm -f "$work/acme.key"
  echo "create-stack: ACME storage key made and stored as $param (SecureString)"
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
  if ! present "$ids"; then
    echo "  (no instances yet)"
    continue
  fi
  # shellcheck disable=SC2086 # one argument per instance id
  aws ec2 describe-instances --instance-ids $ids \
    --query 'Reservations[].Instances[].[InstanceId,PublicIpAddress,PrivateIpAddress]' --output text |
    while read -r id public private; do printf '  %s  public %s  private %s\n' "$id" "$public" "$private"; done
done
echo "next: eval \"\$(bin/tunnel.sh -n $name -r $region)\"  (docs/cloud.md)"
