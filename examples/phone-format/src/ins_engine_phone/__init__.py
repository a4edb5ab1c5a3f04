"""An example ins-engine step kind, `phone_e164`, packaged as a third party would."""
