"""The `crl` subcommands, one module each (registered in crl_ros/cli.py); their shared
argument types are in crl_ros/argtypes.py."""
