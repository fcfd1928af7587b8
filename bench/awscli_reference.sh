#!/usr/bin/env bash
# The reference cloudgrant is measured against: the AWS user-mode onboarding of the
# platform-access profile done the way the seed's shell script does it, one `aws` (awscli 2)
# process per step, each waiting for the one before.
#
#   awscli_reference.sh [--minimal] ENDPOINT CLUSTER_NAME CLUSTER_ID POLICY_JSON
#
# ENDPOINT      the IAM/STS endpoint (moto behind the benchmark's proxies); HTTP_PROXY from the
#               environment puts the latency proxy in front of it, as for the agent
# CLUSTER_NAME  names the user platform-access-<name> and the policy PlatformAccess-<name>
# CLUSTER_ID    the cloudgrant/cluster-id tag
# POLICY_JSON   the policy document (profiles/platform-access-policy.json)
#
# By default it makes the same IAM and STS calls, in the same dependency order, as
# `cloudgrant onboard --profile platform-access` on a fresh account (what the benchmark's
# proxy log shows the agent doing): the caller's account, the reads of the user, its
# attachments, inline policies, keys and the customer policy, the creation of user and
# policy with cloudgrant's tags, the attachment and the access key. --minimal makes only
# what a bare script needs: the account, the two creations, the attachment and the key (the
# floor of any script; no checks at all).
#
# Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; AWS_CLI overrides the
# binary (default Debian's /usr/bin/aws, awscli 2: the one on the PATH may be pyenv's awscli
# 1). Prints one line per call on stderr and the new access key id on stdout.
set -euo pipefail

minimal=0
if [ "${1:-}" = "--minimal" ]; then
    minimal=1
    shift
fi
if [ $# -ne 4 ]; then
    echo "usage: $0 [--minimal] ENDPOINT CLUSTER_NAME CLUSTER_ID POLICY_JSON" >&2
    exit 2
fi
endpoint=$1
cluster=$2
cluster_id=$3
policy_json=$4
AWS=${AWS_CLI:-/usr/bin/aws}
user="platform-access-$cluster"
policy="PlatformAccess-$cluster"
export AWS_PAGER="" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

calls=0
aws() {
    calls=$((calls + 1))
    echo "awscli: aws $1 $2" >&2
    "$AWS" --endpoint-url "$endpoint" --output json "$@"
}
# a read that may find nothing (NoSuchEntity) on a fresh account
aws_maybe() {
    aws "$@" >/dev/null 2>&1 || true
}

account=$(aws sts get-caller-identity --query Account --output text)
policy_arn="arn:aws:iam::$account:policy/$policy"

if [ "$minimal" = 0 ]; then
    aws_maybe iam get-user --user-name "$user"
    aws_maybe iam list-attached-user-policies --user-name "$user"
    aws_maybe iam list-user-policies --user-name "$user"
    aws_maybe iam list-access-keys --user-name "$user"
    aws_maybe iam get-policy --policy-arn "$policy_arn"
fi

aws iam create-user --user-name "$user" --path / \
    --tags Key=managed-by,Value=cloudgrant "Key=cloudgrant/cluster-id,Value=$cluster_id" \
    >/dev/null
aws iam create-policy --policy-name "$policy" --path / \
    --description "Environment provisioning for cluster $cluster (managed by cloudgrant)" \
    --policy-document "file://$policy_json" \
    --tags Key=managed-by,Value=cloudgrant "Key=cloudgrant/cluster-id,Value=$cluster_id" \
    >/dev/null

aws iam attach-user-policy --user-name "$user" --policy-arn "$policy_arn"
key=$(aws iam create-access-key --user-name "$user" --query AccessKey.AccessKeyId --output text)
echo "awscli: $calls calls" >&2
echo "$key"
