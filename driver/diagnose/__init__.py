"""What `pymacvlan doctor` asks of the kernel: which link kinds it can make (kernel modules), and
whether the LAN passes frames from a MAC other than the parent's (a short-lived macvlan child).

Facts only: each function reports what it found; plugin/doctor/ turns the facts into verdicts and
advice. Links are made through the driver's link layer (driver/links.py), frames go through the
packet-socket probe (driver/lan/probe.py).
"""
