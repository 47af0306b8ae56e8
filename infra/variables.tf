# Inputs. scripts/deploy.sh passes every one of them from HEARTH_* environment variables.

variable "project_id" {
  description = "The Google Cloud project id (HEARTH_PROJECT_ID)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 chars of a-z, 0-9 and -)."
  }
}

variable "region" {
  description = "Region of every function that does not name its own in the manifest (HEARTH_REGION). Null: the manifest's defaults.region."
  type        = string
  default     = null
}

variable "firestore_location" {
  description = "Location of the (default) Firestore database, e.g. eur3, nam5 or europe-west1 (HEARTH_FIRESTORE_LOCATION). It cannot be changed once the database exists; Eventarc Firestore triggers are created in the same location."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]+[0-9]$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location id such as eur3, nam5 or europe-west1."
  }
}

variable "image_repo" {
  description = "Container repository the images are pushed to, e.g. europe-west1-docker.pkg.dev/<project>/hearth (HEARTH_IMAGE_REPO). Each function runs <image_repo>/<function>:<image_tag>."
  type        = string

  validation {
    condition     = length(var.image_repo) > 0 && !endswith(var.image_repo, "/")
    error_message = "image_repo must be a repository path without a trailing slash."
  }
}

variable "image_tag" {
  description = "Tag of the images to run (HEARTH_IMAGE_TAG; deploy.sh defaults it to the git commit)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid container image tag."
  }
}

variable "operator_service_accounts" {
  description = "Emails of service accounts that operators use to call the Google-OIDC HTTP routes (auth oidc or firebase_or_oidc) of private functions: they get run.invoker on those services and are added to HEARTH_OIDC_ALLOWED_EMAILS."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.operator_service_accounts : endswith(e, ".gserviceaccount.com")])
    error_message = "operator_service_accounts must be service account emails (...gserviceaccount.com)."
  }
}

variable "firestore_point_in_time_recovery" {
  description = "Keep 7 days of point-in-time recovery on the Firestore database."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channels every alert policy notifies (HEARTH_NOTIFICATION_CHANNELS), as ids projects/<project>/notificationChannels/<id>. Empty: alerts open incidents in the console only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels must be ids like projects/<project>/notificationChannels/<id>."
  }
}

variable "environment" {
  description = "Which environment this deployment is (HEARTH_ENVIRONMENT, default production): selects each function's allowed browser origins in the manifest's `cors` map."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,62}$", var.environment))
    error_message = "environment must be 3-63 chars of a-z, 0-9 and -, starting with a letter (a key of the manifest's cors maps)."
  }
}

variable "metrics_service_accounts" {
  description = "Emails of service accounts that may read /metrics and /metrics.json with a Google OIDC token (HEARTH_METRICS_SERVICE_ACCOUNTS): exported as HEARTH_METRICS_ALLOWED_EMAILS, and given run.invoker on private functions. Empty: metrics are served to nobody."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.metrics_service_accounts : endswith(e, ".gserviceaccount.com")])
    error_message = "metrics_service_accounts must be service account emails (...gserviceaccount.com)."
  }
}
