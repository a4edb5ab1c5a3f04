"""The application shell: starting and stopping the running engine, checking the machine
before it starts, telling systemd, watching file descriptors."""
