#!/usr/bin/env bash
# Delete a berth cluster's stack and wait until it is gone, then the S3
# bucket create-stack.sh made for the berth binary (the stack's BerthBucket).
set -euo pipefail

usage() {
  cat <<USAGE
usage: $(basename "$0") -n NAME -r REGION [-y]

  -n NAME    stack name
  -r REGION  AWS region
  -y         do not ask for confirmation
  -h         this help
USAGE
}
die() { echo "destroy-stack: $*" >&2; exit 1; }

name="" region="" yes=""
while getopts "n:r:yh" opt; do
  case $opt in
    n) name=$OPTARG ;;
    r) region=$OPTARG ;;
    y) yes=1 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
if [ -z "$name" ] || [ -z "$region" ]; then usage >&2; echo "destroy-stack: missing -n NAME or -r REGION" >&2; exit 2; fi
command -v aws >/dev/null || die "the aws CLI is not installed"
export AWS_DEFAULT_REGION=$region
aws cloudformation describe-stacks --stack-name "$name" >/dev/null 2>&1 || die "no stack $name in $region"
if [ -z "$yes" ]; then
  read -r -p "delete stack $name in $region and all its instances? [y/N] " answer || answer=""
  [ "$answer" = y ] || [ "$answer" = yes ] || die "not deleted"
fi
bucket=$(aws cloudformation describe-stacks --stack-name "$name" \
  --query "Stacks[0].Parameters[?ParameterKey=='BerthBucket'].ParameterValue | [0]" --output text)
aws cloudformation delete-stack --stack-name "$name"
echo "destroy-stack: waiting for $name to be deleted..."
aws cloudformation wait stack-delete-complete --stack-name "$name" || die "deletion failed: see aws cloudformation describe-stack-events --stack-name $name"
echo "destroy-stack: $name deleted"
if [ -n "$bucket" ] && [ "$bucket" != None ]; then
  aws s3 rb "s3://$bucket" --force >/dev/null || die "the bucket $bucket is left: aws s3 rb s3://$bucket --force"
  echo "destroy-stack: deleted bucket $bucket"
fi
