# A twistd application of your own with the whole sockserve server in it, as
# twistd sockserve would run it: twistd -n --pidfile '' -y sockserve.tac
from twisted.application.service import Application

from sockserve import Options, makeService

options = Options()
options.parseOptions(["--mode", "chat", "--port", "5000", "--web", "8080"])
application = Application("sockserve")
makeService(options).setServiceParent(application)
