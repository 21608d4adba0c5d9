# An API service instance with an optional load balancer and autoscaling, built from
# Terraform's built-in resources only (no registry); files land under the instance's directory.

variable "service" {
  type = string
}

variable "size" {
  type    = string
  default = "small"
  validation {
    condition     = contains(["small", "medium", "large"], var.size)
    error_message = "size must be small, medium or large."
  }
}

variable "load_balancer" {
  type    = bool
  default = false
}

variable "autoscaling" {
  type    = bool
  default = false
}

variable "db_password" {
  type      = string
  default   = ""
  sensitive = true
  ephemeral = true
}

locals {
  instances = { small = 1, medium = 2, large = 4 }[var.size]
}

resource "terraform_data" "api" {
  input = { service = var.service, size = var.size }
  provisioner "local-exec" {
    command     = "mkdir -p svc && echo 'api ${var.service} (${var.size}, ${local.instances} instance(s))' > svc/api.txt && test -n \"$DB_PASSWORD\" && echo 'database credentials set' >> svc/api.txt || true"
    environment = { DB_PASSWORD = var.db_password }
  }
}

resource "terraform_data" "load_balancer" {
  count      = var.load_balancer ? 1 : 0
  depends_on = [terraform_data.api]
  provisioner "local-exec" {
    command = "echo 'lb -> ${var.service} x${local.instances}' > svc/lb.txt"
  }
}

resource "terraform_data" "autoscaling" {
  count      = var.autoscaling ? 1 : 0
  depends_on = [terraform_data.api]
  input      = { min = local.instances, max = local.instances * 4 }
  provisioner "local-exec" {
    command = "echo 'autoscale ${local.instances}..${local.instances * 4}' > svc/autoscaling.txt"
  }
}

output "endpoint" {
  value = var.load_balancer ? "https://${var.service}.lb.internal" : "http://${var.service}.svc.internal:8080"
}

output "instances" {
  value = local.instances
}

output "max_instances" {
  value = var.autoscaling ? local.instances * 4 : local.instances
}

output "connection_string" {
  value     = "postgres://${var.service}@db.internal/${var.service}"
  sensitive = true
}
