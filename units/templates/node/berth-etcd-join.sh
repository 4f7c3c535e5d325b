#!/bin/bash
# berth-etcd-join: prepares this server's etcd member before etcd starts.
#
# Stable membership on an auto-scaling group: the stack creates one network
# interface per etcd member, with a fixed private IP and a tag naming the
# member (berth:etcd-member=etcd1). At boot a server attaches a free one in
# its availability zone, so a replacement server takes over the same name
# and IP. If the member's data directory is empty while the cluster already
# exists, the old member is removed and re-added (its data is gone), and
# etcd starts with initial-cluster-state=existing.
#
# With BERTH_ETCD_TLS=true, etcd serves TLS with client certificates on both
# ports (docs/security.md): etcdctl talks to the other members as root with
# the certificates berth-pki.service fetched into /etc/berth/pki, and etcd.env
# names the member's files as etcd-member's container sees them.
#
# Writes /etc/berth/etcd.env for the etcd-member drop-in. Needs: curl,
# docker (the aws CLI runs as a container), the instance profile's
# ec2:DescribeNetworkInterfaces and ec2:AttachNetworkInterface.
set -euo pipefail

STACK=${BERTH_STACK:?BERTH_STACK is not set}
REGION=${BERTH_REGION:?BERTH_REGION is not set}
CLUSTER=${BERTH_ETCD_INITIAL_CLUSTER:?BERTH_ETCD_INITIAL_CLUSTER is not set}
DATA=/var/lib/etcd
OUT=/etc/berth/etcd.env
PKI=/etc/berth/pki
SSL=/etc/ssl/certs # where etcd-member's container sees ETCD_SSL_DIR (/etc/berth/pki-etcd)
scheme=http
etcdctl_tls=()
if [ "${BERTH_ETCD_TLS:-}" = true ]; then
  scheme=https
  etcdctl_tls=(--cacert /pki/ca.pem --cert /pki/root.pem --key /pki/root-key.pem)
fi
etcdctl() {
  docker run --rm --network host -v "$PKI:/pki:ro" quay.io/coreos/etcd:v3.5.17 etcdctl "${etcdctl_tls[@]}" "$@"
}

imds() {
  local token
  token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
aws() { docker run --rm --network host -e AWS_REGION="$REGION" public.ecr.aws/aws-cli/aws-cli:2.15.0 "$@"; }

instance=$(imds instance-id)
zone=$(imds placement/availability-zone)

eni_json=""
for _ in $(seq 30); do
  # shellcheck disable=SC2016 # the backticks are JMESPath literals
  eni_json=$(aws ec2 describe-network-interfaces --output json --filters \
    "Name=tag:berth:stack,Values=$STACK" "Name=tag-key,Values=berth:etcd-member" \
    "Name=availability-zone,Values=$zone" "Name=status,Values=available" \
    --query 'NetworkInterfaces[0].[NetworkInterfaceId,PrivateIpAddress,TagSet[?Key==`berth:etcd-member`]|[0].Value]')
  [ "$eni_json" != "null" ] && break
  echo "berth-etcd-join: no free member interface in $zone yet; retrying" >&2
  sleep 10
done
[ "$eni_json" != "null" ] || { echo "berth-etcd-join: no free member interface in $zone" >&2; exit 1; }
eni=$(echo "$eni_json" | tr -d '[]" \n' | cut -d, -f1)
ip=$(echo "$eni_json" | tr -d '[]" \n' | cut -d, -f2)
name=$(echo "$eni_json" | tr -d '[]" \n' | cut -d, -f3)
aws ec2 attach-network-interface --network-interface-id "$eni" --instance-id "$instance" --device-index 1 >/dev/null
for _ in $(seq 60); do ip -4 addr show | grep -q "inet $ip/" && break; sleep 1; done

state=new
if [ ! -d "$DATA/member" ]; then
  # Is there a cluster to join? Ask the other members.
  others=$(echo "$CLUSTER" | tr ',' '\n' | grep -v "^$name=" | cut -d= -f2 | sed 's/2380$/2379/' | paste -sd, -)
  if members=$(etcdctl --endpoints "$others" member list 2>/dev/null); then
    state=existing
    old=$(echo "$members" | awk -F', ' -v n="$name" '$3==n {print $1}')
    if [ -n "$old" ]; then
      etcdctl --endpoints "$others" member remove "$old"
    fi
    etcdctl --endpoints "$others" member add "$name" --peer-urls "$scheme://$ip:2380"
  fi
fi

mkdir -p "$(dirname "$OUT")"
cat > "$OUT" <<ENV
ETCD_NAME=$name
ETCD_DATA_DIR=$DATA
ETCD_INITIAL_CLUSTER=$CLUSTER
ETCD_INITIAL_CLUSTER_STATE=$state
ETCD_INITIAL_CLUSTER_TOKEN=$STACK
ETCD_INITIAL_ADVERTISE_PEER_URLS=$scheme://$ip:2380
ETCD_LISTEN_PEER_URLS=$scheme://$ip:2380
ETCD_LISTEN_CLIENT_URLS=$scheme://$ip:2379,$scheme://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=$scheme://$ip:2379
ENV
if [ "$scheme" = https ]; then
  cat >> "$OUT" <<ENV
ETCD_CLIENT_CERT_AUTH=true
ETCD_TRUSTED_CA_FILE=$SSL/ca.pem
ETCD_CERT_FILE=$SSL/etcd-server.pem
ETCD_KEY_FILE=$SSL/etcd-server-key.pem
ETCD_PEER_CLIENT_CERT_AUTH=true
ETCD_PEER_TRUSTED_CA_FILE=$SSL/ca.pem
ETCD_PEER_CERT_FILE=$SSL/etcd-peer.pem
ETCD_PEER_KEY_FILE=$SSL/etcd-peer-key.pem
ENV
fi
echo "berth-etcd-join: member $name on $ip ($state cluster)"
