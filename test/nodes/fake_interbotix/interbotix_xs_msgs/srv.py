"""The one service type crl_ros's backend builds itself (fields as interbotix_xs_msgs/srv/RegisterValues.srv)."""


class RegisterValues:
    class Request:
        def __init__(self, cmd_type="", name="", reg="", value=0):
            self.cmd_type, self.name, self.reg, self.value = cmd_type, name, reg, value
