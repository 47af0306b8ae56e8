#!/usr/bin/env bash
# Deploys Hearth to a Google Cloud project, driven by the functions manifest.
#
#   scripts/deploy.sh [--only fn1,fn2] [--dry-run]
#
# Steps, in order (docs/deploy.md explains each, and the manual ones that remain):
#   1. enable the APIs needed before Terraform runs; create the Terraform state bucket and the
#      image repository when missing;
#   2. build and push one image per function with Cloud Build (cloudbuild.yaml, Dockerfile);
#   3. terraform init, adopt an existing Firestore database / Identity Platform config into the
#      state, terraform apply (Cloud Run services with the manifest's settings, IAM, Pub/Sub,
#      dead letters, Scheduler, Eventarc, Identity Platform blocking functions, Firestore TTL,
#      Cloud Monitoring SLOs and alert policies from the manifest's slo blocks);
#   4. firebase deploy --only firestore:rules,firestore:indexes;
#   5. verify: every deployed service answers GET /health on its public URL (not /healthz:
#      Cloud Run reserves some paths ending in z there and answers them itself); then print
#      the manual steps left.
#
# --only fn1,fn2  build and roll out only these functions (terraform apply -target on their
#                 services); rules, indexes and the rest of the infrastructure are left as they
#                 are. Unknown names are refused.
# --dry-run       print every command, in order, and change nothing. Missing tools are reported
#                 (on stderr) but the plan still prints; logins are not checked. Missing
#                 variables fail, as in a real run.
#
# Environment:
#   HEARTH_PROJECT_ID          (required) the Google Cloud project id
#   HEARTH_FIRESTORE_LOCATION  (required) Firestore location, e.g. eur3 or europe-west1; fixed
#                              once the database exists
#   HEARTH_REGION              region of functions that name none (default: the manifest's
#                              defaults.region)
#   HEARTH_IMAGE_REPO          image repository (default: <region>-docker.pkg.dev/<project>/hearth)
#   HEARTH_IMAGE_TAG           image tag (default: the git commit, with -dirty for local changes)
#   HEARTH_TF_STATE_BUCKET     Terraform state bucket (default: <project>-hearth-tfstate)
#   HEARTH_OPERATOR_SERVICE_ACCOUNTS  comma list of operator service accounts (Google OIDC
#                              callers of private HTTP routes)
#   HEARTH_ENVIRONMENT         which environment this is (default: production): picks each
#                              function's browser origins from the manifest's `cors` map
#                              (HEARTH_CORS_ORIGINS)
#   HEARTH_METRICS_SERVICE_ACCOUNTS  comma list of service accounts that may read /metrics
#                              (HEARTH_METRICS_ALLOWED_EMAILS; default: nobody)
#   HEARTH_NOTIFICATION_CHANNELS  comma list of Cloud Monitoring notification channel ids
#                              (projects/<project>/notificationChannels/<id>) every alert
#                              policy notifies (default: none, incidents show in the console)
#   HEARTH_MANIFEST            manifest to plan from (default: shared/functions.yaml; any other
#                              file only with --dry-run, since Terraform reads shared/functions.yaml)
set -euo pipefail

die() {
  echo "deploy: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# Without a firebase on PATH, the repository's pinned firebase-tools (npm ci) is used.
PATH="$PATH:$root/node_modules/.bin"

dry_run=0
only=""
only_given=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --only)
      [ $# -ge 2 ] || die "--only needs a comma-separated list of functions"
      only="$2"
      only_given=1
      shift
      ;;
    --only=*)
      only="${1#--only=}"
      only_given=1
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
if [ "$only_given" = 1 ] && [ -z "${only//,/}" ]; then
  die "--only needs at least one function name"
fi

# --- tools -------------------------------------------------------------------------------------

command -v python3 >/dev/null 2>&1 ||
  die "python3 is missing: it reads the manifest (Debian: apt-get install python3)"
python3 -c 'import yaml' 2>/dev/null ||
  die "PyYAML is missing: python3 -m pip install -r infra/requirements-test.txt"

missing_tools=()
need_tool() { command -v "$1" >/dev/null 2>&1 || missing_tools+=("$1: $2"); }
need_tool gcloud "the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"
need_tool terraform "Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install)"
need_tool firebase "firebase-tools (npm ci in the repository installs the pinned version)"
need_tool curl "curl (Debian: apt-get install curl)"
if [ ${#missing_tools[@]} -gt 0 ]; then
  if [ "$dry_run" = 1 ]; then
    {
      echo "deploy: warning: a real run would stop here, these tools are missing:"
      printf '  - %s\n' "${missing_tools[@]}"
    } >&2
  else
    {
      echo "deploy: missing tools:"
      printf '  - %s\n' "${missing_tools[@]}"
    } >&2
    exit 1
  fi
fi

# --- settings ----------------------------------------------------------------------------------

manifest="${HEARTH_MANIFEST:-shared/functions.yaml}"
[ -f "$manifest" ] || die "manifest $manifest not found"
if [ "$dry_run" = 0 ] && [ "$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")" != "$root/shared/functions.yaml" ]; then
  die "HEARTH_MANIFEST=$manifest: Terraform deploys shared/functions.yaml, so another manifest is only for --dry-run"
fi

missing_vars=()
[ -n "${HEARTH_PROJECT_ID:-}" ] || missing_vars+=("HEARTH_PROJECT_ID: the Google Cloud project id")
[ -n "${HEARTH_FIRESTORE_LOCATION:-}" ] || missing_vars+=("HEARTH_FIRESTORE_LOCATION: the Firestore location, e.g. eur3, nam5 or europe-west1 (permanent once the database exists)")
if [ ${#missing_vars[@]} -gt 0 ]; then
  {
    echo "deploy: missing variables:"
    printf '  - %s\n' "${missing_vars[@]}"
  } >&2
  exit 1
fi
project="$HEARTH_PROJECT_ID"
firestore_location="$HEARTH_FIRESTORE_LOCATION"
[[ "$project" =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || die "HEARTH_PROJECT_ID=$project is not a Google Cloud project id"
[[ "$firestore_location" =~ ^[a-z][a-z0-9-]+[0-9]$ ]] || die "HEARTH_FIRESTORE_LOCATION=$firestore_location is not a Firestore location"

# The manifest, one record per line, fields separated by US (0x1f) so empty ones survive `read`:
# "default_region R", "function name crate public region blocking",
# "slo name p95_ms p99_ms error_rate_percent availability_percent" (the function's slo over
# defaults.slo over the built-in objectives, as in infra/locals.tf) and "dead_letter topic".
manifest_lines="$(
  python3 - "$manifest" <<'PY'
import sys, yaml
path = sys.argv[1]
try:
    with open(path, encoding="utf-8") as fh:
        m = yaml.safe_load(fh)
    region = m["defaults"]["region"]
    functions = m.get("functions") or {}
    print("default_region", region, sep="\x1f")
    built_in = {"latency_p95_ms": 300, "latency_p99_ms": 800, "error_rate_percent": 0.1, "availability_percent": 99.95}
    defaults_slo = m["defaults"].get("slo") or {}
    for name in sorted(functions):
        f = functions[name] or {}
        crate = f["crate"]
        triggers = f.get("triggers") or []
        blocking = any(t.get("kind") == "blocking" for t in triggers)
        print("function", name, crate, "1" if f.get("public") else "0", f.get("region") or "", "1" if blocking else "0", sep="\x1f")
        slo = {**built_in, **defaults_slo, **(f.get("slo") or {})}
        print("slo", name, *(f"{slo[k]:g}" for k in built_in), sep="\x1f")
    for topic, spec in sorted((m.get("topics") or {}).items()):
        if (spec or {}).get("dead_letter"):
            print("dead_letter", topic, sep="\x1f")
except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as e:
    sys.exit(f"deploy: cannot read the manifest {path}: {e!r}")
PY
)" || exit 1

default_region=""
fn_names=()
dead_letter_topics=()
declare -A fn_crate fn_public fn_region fn_blocking fn_slo
while IFS=$'\x1f' read -r kind a b c d e; do
  case "$kind" in
    default_region) default_region="$a" ;;
    slo) fn_slo[$a]="SLOs availability $e%, p95 $b ms, p99 $c ms; alerts p95 > $b ms, p99 > $c ms, 5xx > $d%" ;;
    dead_letter) dead_letter_topics+=("$a") ;;
    function)
      fn_names+=("$a")
      fn_crate[$a]="$b"
      fn_public[$a]="$c"
      fn_region[$a]="$d"
      fn_blocking[$a]="$e"
      ;;
  esac
done <<<"$manifest_lines"
[ ${#fn_names[@]} -gt 0 ] || die "the manifest $manifest declares no functions"

region="${HEARTH_REGION:-$default_region}"
image_repo="${HEARTH_IMAGE_REPO:-$region-docker.pkg.dev/$project/hearth}"
image_repo="${image_repo%/}"
state_bucket="${HEARTH_TF_STATE_BUCKET:-$project-hearth-tfstate}"
if [ -n "${HEARTH_IMAGE_TAG:-}" ]; then
  image_tag="$HEARTH_IMAGE_TAG"
else
  command -v git >/dev/null 2>&1 || die "HEARTH_IMAGE_TAG is not set and git is missing to derive it"
  image_tag="$(git rev-parse --short=12 HEAD 2>/dev/null)" || die "HEARTH_IMAGE_TAG is not set and this is not a git checkout"
  [ -z "$(git status --porcelain 2>/dev/null)" ] || image_tag="$image_tag-dirty"
fi
[[ "$image_tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "HEARTH_IMAGE_TAG=$image_tag is not a valid image tag"

selected=()
if [ "$only_given" = 1 ]; then
  unknown=()
  declare -A wanted=()
  IFS=',' read -r -a requested <<<"$only"
  for w in "${requested[@]}"; do
    [ -n "$w" ] || continue
    if [ -n "${fn_crate[$w]+set}" ]; then
      wanted[$w]=1
    else
      unknown+=("$w")
    fi
  done
  if [ ${#unknown[@]} -gt 0 ]; then
    die "unknown function(s) in --only: ${unknown[*]} (the manifest has: ${fn_names[*]})"
  fi
  # In manifest order, whatever the order given.
  for fn in "${fn_names[@]}"; do
    [ -z "${wanted[$fn]+set}" ] || selected+=("$fn")
  done
else
  selected=("${fn_names[@]}")
fi

# Quotes a word for the printed (and evaluated) command lines only when it needs it.
q() {
  if [[ "$1" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

tf_vars="-var=$(q "project_id=$project") -var=$(q "firestore_location=$firestore_location") -var=$(q "image_repo=$image_repo") -var=$(q "image_tag=$image_tag")"
if [ -n "${HEARTH_REGION:-}" ]; then
  tf_vars="$tf_vars -var=$(q "region=$HEARTH_REGION")"
fi
if [ -n "${HEARTH_OPERATOR_SERVICE_ACCOUNTS:-}" ]; then
  operators_json="$(python3 -c 'import json,sys; print(json.dumps([s.strip() for s in sys.argv[1].split(",") if s.strip()], separators=(",", ":")))' "$HEARTH_OPERATOR_SERVICE_ACCOUNTS")"
  tf_vars="$tf_vars -var=$(q "operator_service_accounts=$operators_json")"
fi
if [ -n "${HEARTH_ENVIRONMENT:-}" ]; then
  [[ "$HEARTH_ENVIRONMENT" =~ ^[a-z][a-z0-9-]{2,62}$ ]] || die "HEARTH_ENVIRONMENT=$HEARTH_ENVIRONMENT is not an environment name (a key of the manifest's cors maps)"
  tf_vars="$tf_vars -var=$(q "environment=$HEARTH_ENVIRONMENT")"
fi
if [ -n "${HEARTH_METRICS_SERVICE_ACCOUNTS:-}" ]; then
  readers_json="$(python3 -c 'import json,sys; print(json.dumps([s.strip() for s in sys.argv[1].split(",") if s.strip()], separators=(",", ":")))' "$HEARTH_METRICS_SERVICE_ACCOUNTS")"
  tf_vars="$tf_vars -var=$(q "metrics_service_accounts=$readers_json")"
fi
channels="none (incidents show in the Cloud Monitoring console only)"
if [ -n "${HEARTH_NOTIFICATION_CHANNELS:-}" ]; then
  channels_json="$(python3 -c 'import json,sys; print(json.dumps([s.strip() for s in sys.argv[1].split(",") if s.strip()], separators=(",", ":")))' "$HEARTH_NOTIFICATION_CHANNELS")"
  tf_vars="$tf_vars -var=$(q "notification_channels=$channels_json")"
  channels="$HEARTH_NOTIFICATION_CHANNELS"
fi

# --- plan --------------------------------------------------------------------------------------

plan=()
say() { plan+=("# $*"); }
run() { plan+=("$*"); }

say "Hearth deploy: project $project, functions: ${selected[*]}"
say "images $image_repo/<function>:$image_tag, default region $region, Firestore $firestore_location"
say "manifest $manifest, Terraform state gs://$state_bucket/hearth"

full=1
[ "$only_given" = 1 ] && full=0

if [ "$full" = 1 ]; then
  say "1. APIs needed before Terraform runs, the state bucket and the image repository"
  run "gcloud services enable artifactregistry.googleapis.com cloudbuild.googleapis.com cloudresourcemanager.googleapis.com serviceusage.googleapis.com storage.googleapis.com --project=$(q "$project")"
  run "gcloud storage buckets describe gs://$(q "$state_bucket") --project=$(q "$project") >/dev/null 2>&1 || gcloud storage buckets create gs://$(q "$state_bucket") --project=$(q "$project") --location=$(q "$region") --uniform-bucket-level-access"
  run "gcloud storage buckets update gs://$(q "$state_bucket") --versioning --project=$(q "$project")"
  if [[ "$image_repo" =~ ^([a-z0-9-]+)-docker\.pkg\.dev/([a-z0-9-]+)/([a-z0-9._-]+)$ ]] && [ "${BASH_REMATCH[2]}" = "$project" ]; then
    ar_location="${BASH_REMATCH[1]}"
    ar_repo="${BASH_REMATCH[3]}"
    run "gcloud artifacts repositories describe $(q "$ar_repo") --location=$(q "$ar_location") --project=$(q "$project") >/dev/null 2>&1 || gcloud artifacts repositories create $(q "$ar_repo") --repository-format=docker --location=$(q "$ar_location") --project=$(q "$project") --description='Hearth function images'"
  else
    say "image repository $image_repo is not an Artifact Registry repository of $project: it must exist already"
  fi
fi

say "2. Build and push one image per function (Cloud Build, cloudbuild.yaml)"
for fn in "${selected[@]}"; do
  run "gcloud builds submit . --project=$(q "$project") --config=cloudbuild.yaml --substitutions=$(q "_BIN=${fn_crate[$fn]},_FN=$fn,_REPO=$image_repo,_TAG=$image_tag")"
done

say "3. Terraform: services with the manifest's settings, IAM, Pub/Sub, Scheduler, Eventarc, Identity Platform, Firestore, Cloud Monitoring"
run "terraform -chdir=infra init -input=false -reconfigure -backend-config=$(q "bucket=$state_bucket") -backend-config=prefix=hearth"
if [ "$full" = 1 ]; then
  say "adopt a Firestore database created before Terraform managed it (e.g. in the Firebase console)"
  run "terraform -chdir=infra state show google_firestore_database.default >/dev/null 2>&1 || ! gcloud firestore databases describe --database='(default)' --project=$(q "$project") >/dev/null 2>&1 || terraform -chdir=infra import -input=false $tf_vars google_firestore_database.default $(q "projects/$project/databases/(default)")"
  any_blocking=0
  for fn in "${fn_names[@]}"; do
    [ "${fn_blocking[$fn]}" = 1 ] && any_blocking=1
  done
  if [ "$any_blocking" = 1 ]; then
    say "adopt an existing Identity Platform configuration (Terraform then owns only its blocking functions)"
    run "terraform -chdir=infra state show 'google_identity_platform_config.auth[0]' >/dev/null 2>&1 || ! curl -fsS -o /dev/null -H \"Authorization: Bearer \$(gcloud auth print-access-token)\" -H $(q "x-goog-user-project: $project") https://identitytoolkit.googleapis.com/admin/v2/projects/$(q "$project")/config || terraform -chdir=infra import -input=false $tf_vars 'google_identity_platform_config.auth[0]' $(q "projects/$project/config")"
  fi
  say "monitoring (infra/monitoring.tf), every alert policy notifies: $channels"
  for fn in "${fn_names[@]}"; do
    say "  $fn: ${fn_slo[$fn]}"
  done
  for topic in "${dead_letter_topics[@]}"; do
    say "  dead letters: alert while $topic--pull holds messages"
  done
  say "  circuit breaker: alert when a payment provider's circuit breaker opens (log-based metric hearth-circuit-breaker-opened)"
  run "terraform -chdir=infra apply -input=false -auto-approve $tf_vars"
else
  targets=""
  for fn in "${selected[@]}"; do
    targets="$targets -target='google_cloud_run_v2_service.function[\"$fn\"]'"
  done
  say "monitoring (SLOs, alert policies) is left as it is: a full deploy applies it"
  run "terraform -chdir=infra apply -input=false -auto-approve $tf_vars$targets"
fi

if [ "$full" = 1 ]; then
  say "4. Firestore security rules and composite indexes (firebase.json)"
  run "firebase deploy --only firestore:rules,firestore:indexes --project=$(q "$project") --non-interactive"
fi

say "5. Verify: each service answers GET /health on its URL (private ones with your identity token; /healthz is reserved by Cloud Run there)"
for fn in "${selected[@]}"; do
  fn_reg="${fn_region[$fn]:-$region}"
  url="\$(gcloud run services describe $(q "$fn") --project=$(q "$project") --region=$(q "$fn_reg") --format='value(status.url)')"
  if [ "${fn_public[$fn]}" = 1 ]; then
    run "curl -fsS --max-time 30 -o /dev/null \"$url/health\""
  else
    run "curl -fsS --max-time 30 -o /dev/null -H \"Authorization: Bearer \$(gcloud auth print-identity-token)\" \"$url/health\""
  fi
done

manual=(
  "Once per project: billing enabled; Firebase added to the project (console, or: firebase projects:addfirebase $project); sign-in providers chosen in Authentication (Terraform leaves them alone)."
  "Once per secret named in the manifest: gcloud secrets create <id> --project=$project --data-file=- (then add versions to rotate); the services read version 'latest'."
  "If Identity Platform refuses blocking functions: upgrade to Firebase Authentication with Identity Platform (console: Authentication > Settings), then run this script again."
  "Composite indexes keep building for a few minutes after step 4: Firestore > Indexes shows when they are enabled."
  "Smoke test: create a user in Authentication > Users or sign up in the app, then check users/{uid} and tenants/ in Firestore."
)

# --- run ---------------------------------------------------------------------------------------

if [ "$dry_run" = 1 ]; then
  printf '%s\n' "${plan[@]}"
  echo "# manual steps that remain:"
  printf '#   - %s\n' "${manual[@]}"
  exit 0
fi

gcloud auth print-access-token >/dev/null 2>&1 ||
  die "not logged in to Google Cloud: run gcloud auth login (and gcloud auth application-default login for Terraform)"
gcloud auth application-default print-access-token >/dev/null 2>&1 ||
  die "no application default credentials for Terraform: run gcloud auth application-default login"

for line in "${plan[@]}"; do
  if [[ "$line" == "# "* ]]; then
    echo "$line"
    continue
  fi
  echo "+ $line"
  eval "$line" || die "step failed (exit $?): $line"
done
echo "# deployed. Manual steps that remain:"
printf '#   - %s\n' "${manual[@]}"
