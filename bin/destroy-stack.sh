#!/usr/bin/env bash
# Delete a berth cluster's stack and wait until it is gone.
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
if [ -z "$name" ] || [ -z "$region" ]; then usage >&2; die "missing -n NAME or -r REGION"; fi
command -v aws >/dev/null || die "the aws CLI is not installed"
export AWS_DEFAULT_REGION=$region
aws cloudformation describe-stacks --stack-name "$name" >/dev/null 2>&1 || die "no stack $name in $region"
if [ -z "$yes" ]; then
  read -r -p "delete stack $name in $region and all its instances? [y/N] " answer || answer=""
  [ "$answer" = y ] || [ "$answer" = yes ] || die "not deleted"
fi
aws cloudformation delete-stack --stack-name "$name"
echo "destroy-stack: waiting for $name to be deleted..."
aws cloudformation wait stack-delete-complete --stack-name "$name" || die "deletion failed: see aws cloudformation describe-stack-events --stack-name $name"
echo "destroy-stack: $name deleted"
