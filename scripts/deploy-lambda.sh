#!/usr/bin/env bash
# Deploys the HTTP functions that can run on AWS Lambda as Lambda functions with function URLs,
# driven by the functions manifest; everything else stays on Google Cloud (scripts/deploy.sh).
#
#   scripts/deploy-lambda.sh [--only fn1,fn2] [--dry-run]
#
# A function goes to Lambda when it is public and every trigger is HTTP authenticated by the
# app itself (`auth: firebase` or `auth: provider`): a function URL (auth type NONE) then serves
# it as Cloud Run does. Pub/Sub push, Scheduler, Eventarc, blocking functions and Google OIDC
# callers stay on Google Cloud, and so does a function with `min_instances` (it works between
# requests, which a frozen Lambda instance cannot); the plan lists them and why. For each function, by name
# (docs/deploy.md, "AWS Lambda"):
#   1. cargo lambda build: a release arm64 bootstrap zip of the function's binary, with the
#      Google credential configuration (workload identity federation) inside;
#   2. an env file (mode 600; secret values are never printed): GOOGLE_CLOUD_PROJECT, the
#      credential path, then by name the manifest's env, HEARTH_CORS_ORIGINS for
#      HEARTH_ENVIRONMENT, HEARTH_WRITE_BUDGET_INSTANCES (max_instances), then each secret read
#      from Secret Manager;
#   3. cargo lambda deploy: memory and timeout from the manifest, the execution role, a function
#      URL, the env file;
#   4. reserved concurrency = max_instances (the manifest's instance cap, as on Cloud Run);
#   5. verify: GET /health on the function URL.
#
# --only fn1,fn2  deploy only these (each must be Lambda-capable; others are refused, naming why)
# --dry-run       print every command, in order, and change nothing; secret values are never
#                 read. Missing tools are reported (on stderr) but the plan still prints.
#
# Environment:
#   HEARTH_PROJECT_ID          (required) the Google Cloud project the functions use
#   HEARTH_AWS_REGION          (required) the AWS region, e.g. eu-west-1
#   HEARTH_LAMBDA_ROLE_ARN     (required) the functions' execution role
#                              (AWSLambdaBasicExecutionRole is enough)
#   HEARTH_GCP_CREDENTIALS     (required) Google credential configuration file for workload
#                              identity federation from AWS (gcloud iam workload-identity-pools
#                              create-cred-config ... --aws); shipped in the zip
#   HEARTH_ENVIRONMENT         which `cors` entry of the manifest applies (default: production)
#   HEARTH_MANIFEST            manifest to plan from (default: shared/functions.yaml)
#   HEARTH_LAMBDA_WORK_DIR     where env files are written (default: target/lambda-deploy)
set -euo pipefail

die() {
  echo "deploy-lambda: $*" >&2
  exit 1
}

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

dry_run=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --only)
      [ $# -ge 2 ] || die "--only needs a comma-separated list of functions"
      only="$2"
      shift
      ;;
    --only=*) only="${1#--only=}" ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

command -v python3 >/dev/null 2>&1 || die "python3 is missing: it reads the manifest"
python3 -c 'import yaml' 2>/dev/null ||
  die "PyYAML is missing: python3 -m pip install -r infra/requirements-test.txt"

project="${HEARTH_PROJECT_ID:-}"
[ -n "$project" ] || die "HEARTH_PROJECT_ID is not set (the Google Cloud project the functions use)"
aws_region="${HEARTH_AWS_REGION:-}"
[ -n "$aws_region" ] || die "HEARTH_AWS_REGION is not set (the AWS region, e.g. eu-west-1)"
role="${HEARTH_LAMBDA_ROLE_ARN:-}"
[[ "$role" =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+ ]] ||
  die "HEARTH_LAMBDA_ROLE_ARN=${role:-<unset>} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
creds="${HEARTH_GCP_CREDENTIALS:-}"
[ -n "$creds" ] || die "HEARTH_GCP_CREDENTIALS is not set (the workload identity federation credential configuration)"
if [ "$dry_run" = 0 ]; then
  [ -f "$creds" ] || die "HEARTH_GCP_CREDENTIALS=$creds: no such file"
fi
environment="${HEARTH_ENVIRONMENT:-production}"
manifest="${HEARTH_MANIFEST:-shared/functions.yaml}"
[ -f "$manifest" ] || die "manifest $manifest not found"
work_dir="${HEARTH_LAMBDA_WORK_DIR:-target/lambda-deploy}"

# One record per function, fields separated by US (0x1f): name, crate, "lambda" or the reason
# it stays on Google Cloud, memory in MB, timeout s, max instances, then env assignments
# (KEY=VALUE, RS-separated) and secrets (KEY=secret-id, RS-separated).
records="$(
  python3 - "$manifest" "$environment" <<'PY'
import re, sys, yaml
path, environment = sys.argv[1], sys.argv[2]
US, RS = "\x1f", "\x1e"
def megabytes(memory):
    m = re.fullmatch(r"(\d+)(Mi|Gi|M|G)", str(memory))
    if not m:
        sys.exit(f"deploy-lambda: memory {memory!r} is not like 256Mi or 1Gi")
    n, unit = int(m.group(1)), m.group(2)
    return n * 1024 if unit in ("Gi", "G") else n
try:
    with open(path, encoding="utf-8") as fh:
        m = yaml.safe_load(fh)
    defaults = m["defaults"]["resources"]
    for name, f in sorted((m.get("functions") or {}).items()):
        f = f or {}
        triggers = f.get("triggers") or []
        blockers = sorted({t["kind"] if t["kind"] != "http" else f"http auth {t['auth']}"
                           for t in triggers
                           if t["kind"] != "http" or t.get("auth") not in ("firebase", "provider")})
        if not f.get("public"):
            blockers.insert(0, "private")
        if not triggers:
            blockers.append("no triggers")
        res = {**defaults, **(f.get("resources") or {})}
        # Lambda freezes an instance between invocations: work that must keep running between
        # requests (search's listen stream) asks for warm instances and stays on Cloud Run.
        if int(res.get("min_instances") or 0) > 0:
            blockers.append("min_instances (works between requests)")
        verdict = "lambda" if not blockers else ", ".join(blockers)
        timeout = min(int(res["timeout_seconds"]), 900)
        env = dict(f.get("env") or {})
        origins = (f.get("cors") or {}).get(environment) or []
        if origins:
            env["HEARTH_CORS_ORIGINS"] = ",".join(origins)
        env["HEARTH_WRITE_BUDGET_INSTANCES"] = str(res["max_instances"])
        secrets = f.get("secrets") or {}
        print(name, f["crate"], verdict, megabytes(res["memory"]), timeout, res["max_instances"],
              RS.join(f"{k}={v}" for k, v in sorted(env.items())),
              RS.join(f"{k}={v}" for k, v in sorted(secrets.items())), sep=US)
except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as e:
    sys.exit(f"deploy-lambda: cannot read the manifest {path}: {e!r}")
PY
)" || exit 1

names=()
declare -A crate verdict memory timeout max_instances env secrets
while IFS=$'\x1f' read -r n c v mem t max e s; do
  names+=("$n")
  crate[$n]="$c"
  verdict[$n]="$v"
  memory[$n]="$mem"
  timeout[$n]="$t"
  max_instances[$n]="$max"
  env[$n]="$e"
  secrets[$n]="$s"
done <<<"$records"

selected=()
if [ -n "$only" ]; then
  IFS=',' read -r -a wanted <<<"$only"
  for w in "${wanted[@]}"; do
    [ -n "${verdict[$w]+x}" ] || die "unknown function in --only: $w (the manifest has: ${names[*]})"
    [ "${verdict[$w]}" = lambda ] || die "$w stays on Google Cloud (${verdict[$w]}): it cannot be deployed to Lambda"
  done
  for n in "${names[@]}"; do
    for w in "${wanted[@]}"; do [ "$n" = "$w" ] && selected+=("$n"); done
  done
else
  for n in "${names[@]}"; do [ "${verdict[$n]}" = lambda ] && selected+=("$n"); done
fi
[ ${#selected[@]} -gt 0 ] || die "no function of $manifest can run on Lambda"

missing=()
for tool in cargo-lambda aws gcloud curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  msg="missing tools: ${missing[*]} (cargo install cargo-lambda; the AWS CLI; the Google Cloud CLI; curl)"
  [ "$dry_run" = 1 ] && echo "deploy-lambda: $msg" >&2 || die "$msg"
fi

run() {
  echo "$*"
  [ "$dry_run" = 1 ] || eval "$*"
}

creds_name="$(basename "$creds")"
echo "# AWS Lambda plan: project $project, region $aws_region, environment $environment, manifest $manifest"
for n in "${names[@]}"; do
  [ "${verdict[$n]}" = lambda ] || echo "# stays on Google Cloud: $n (${verdict[$n]})"
done
run "mkdir -p $work_dir && chmod 700 $work_dir"
for n in "${selected[@]}"; do
  file="$work_dir/$n.env"
  echo "# $n: crate ${crate[$n]}, ${memory[$n]} MB, timeout ${timeout[$n]} s, at most ${max_instances[$n]} at once"
  run "cargo lambda build --release --arm64 --bin ${crate[$n]} --output-format zip --include $creds"
  run "install -m 600 /dev/null $file"
  run "echo GOOGLE_CLOUD_PROJECT=$project >> $file"
  run "echo GOOGLE_APPLICATION_CREDENTIALS=/var/task/$creds_name >> $file"
  if [ -n "${env[$n]}" ]; then
    IFS=$'\x1e' read -r -a pairs <<<"${env[$n]}"
    # Single-quoted, so a value is written as the manifest has it.
    for pair in "${pairs[@]}"; do run "echo '${pair//\'/\'\\\'\'}' >> $file"; done
  fi
  if [ -n "${secrets[$n]}" ]; then
    IFS=$'\x1e' read -r -a pairs <<<"${secrets[$n]}"
    for pair in "${pairs[@]}"; do
      key="${pair%%=*}"
      secret="${pair#*=}"
      run "echo $key=\"\$(gcloud secrets versions access latest --secret=$secret --project=$project)\" >> $file"
    done
  fi
  run "cargo lambda deploy $n --binary-name ${crate[$n]} --region $aws_region --iam-role $role --memory ${memory[$n]} --timeout ${timeout[$n]} --enable-function-url --env-file $file --tag hearth:function=$n"
  run "aws lambda put-function-concurrency --function-name $n --reserved-concurrent-executions ${max_instances[$n]} --region $aws_region"
  run "curl -fsS --retry 5 --retry-all-errors \"\$(aws lambda get-function-url-config --function-name $n --region $aws_region --query FunctionUrl --output text)health\""
done
echo "# done: ${selected[*]} on AWS Lambda; the rest stays on Google Cloud (scripts/deploy.sh)"
