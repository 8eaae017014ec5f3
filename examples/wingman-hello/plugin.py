# plugin.py
from homelab.execution_plugins.base import ExecutionPlugin


class HelloPlugin(ExecutionPlugin):
    """Greets a target; the smallest complete Wingman execution plugin (seed 004)."""

    @property
    def plugin_id(self) -> str:
        return "wingman-hello"

    @property
    def supported_actions(self) -> list[str]:
        return ["hello", "describe"]

    async def validate_pre(self, action: dict) -> tuple[bool, str]:
        """Validate before execution."""
        action_type = action.get("action_type")
        if action_type not in self.supported_actions:
            return False, f"Unsupported action: {action_type}"
        target = action.get("target")
        if target is not None and not isinstance(target, str):
            return False, "target must be a string"
        return True, "Validation passed"

    async def execute(self, action: dict) -> dict:
        """Execute the action."""
        action_type = action.get("action_type")
        target = action.get("target") or "world"

        if action_type == "hello":
            return {"status": "success", "message": f"Hello, {target}!"}

        if action_type == "describe":
            params = action.get("params") or {}
            return {
                "status": "success",
                "message": f"Would act on {target}",
                "params": sorted(params) if isinstance(params, dict) else [],
            }

        return {"status": "error", "message": "Unknown action"}

    async def validate_post(self, action: dict, result: dict) -> tuple[bool, str]:
        """Validate after execution."""
        if result.get("status") == "success":
            return True, "Post-validation passed"
        return False, result.get("message", "Unknown error")

    async def rollback(self, action: dict, result: dict) -> bool:
        """Nothing to undo: this plugin changes no state."""
        return True
