"""The plugin contract: hook specifications, the specs hooks return, and the plugin manager that chooses them."""
