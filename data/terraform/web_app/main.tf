# A web application instance, built from Terraform's built-in resources only (no registry):
# each resource's local-exec writes files under the instance's own directory.

variable "app_name" {
  type = string
}

variable "replicas" {
  type    = number
  default = 2
}

variable "admin_token" {
  type      = string
  default   = ""
  sensitive = true
  # never stored in the plan file or the state: Terraform asks for it again at apply
  ephemeral = true
}

resource "terraform_data" "site" {
  input = var.app_name
  provisioner "local-exec" {
    command = "mkdir -p site && echo '<h1>${var.app_name}</h1>' > site/index.html"
  }
}

resource "terraform_data" "servers" {
  depends_on = [terraform_data.site]
  input      = var.replicas
  provisioner "local-exec" {
    command = "for i in $(seq 1 ${var.replicas}); do echo \"server $i of ${var.app_name}\" > site/server-$i.txt; done"
  }
}

resource "terraform_data" "admin" {
  depends_on = [terraform_data.servers]
  provisioner "local-exec" {
    command     = "test -n \"$ADMIN_TOKEN\" && echo 'admin access configured' > site/admin.txt || echo 'no admin access' > site/admin.txt"
    environment = { ADMIN_TOKEN = var.admin_token }
  }
}

output "url" {
  value = "http://${var.app_name}.apps.internal"
}

output "replicas" {
  value = var.replicas
}

output "site_dir" {
  value = "${abspath(path.module)}/site"
}
