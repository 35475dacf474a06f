"""The running platform: controller, host agents and the lab."""
