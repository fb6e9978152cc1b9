"""An example k3dn plugin: the model of :mod:`k3dn_plugin_example.model` and the script that publishes its weights
(:mod:`k3dn_plugin_example.publish`). Importing the package imports neither (nor torch)."""
