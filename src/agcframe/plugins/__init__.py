"""agcframe's built-in plugins, one subpackage each, registered through the same door as third-party ones."""
