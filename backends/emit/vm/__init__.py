"""The `vm` backend: one libvirt domain XML per `vm` module instance."""

from backends.emit.vm.generate import IMAGE_DIR, render_vm, tap_name

__all__ = ["IMAGE_DIR", "render_vm", "tap_name"]
