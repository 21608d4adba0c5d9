variable "name" { type = string }
variable "fail_second" {
  type    = bool
  default = false
}
variable "pause" {
  type    = number
  default = 0
}
variable "token" {
  type      = string
  default   = ""
  sensitive = true
  ephemeral = true
}
resource "terraform_data" "first" {
  input = var.name
  provisioner "local-exec" {
    command     = "echo first ${var.name} > first.txt && test -z \"$TOKEN\" || echo token-set >> first.txt"
    environment = { TOKEN = var.token }
  }
}
resource "terraform_data" "second" {
  depends_on = [terraform_data.first]
  input      = var.name
  provisioner "local-exec" {
    command = "sleep ${var.pause}; ${var.fail_second ? "echo second breaks >&2; exit 3" : "echo second > second.txt"}"
  }
}
resource "terraform_data" "third" {
  depends_on = [terraform_data.second]
  input      = var.name
  provisioner "local-exec" { command = "echo third > third.txt" }
}
output "url" { value = "http://${var.name}.test" }
output "secret_url" {
  value     = "http://admin:hunter-${var.name}@${var.name}.test"
  sensitive = true
}
