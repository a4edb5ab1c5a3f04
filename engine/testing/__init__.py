"""Test doubles for the engine's own tests and for plug-in authors' tests.

`clock.ManualClock` reads the time a test sets, `insi.ScriptedInsi` is a local INSi whose
answers a test scripts, `receiver.Receiver` an MLLP receiver on loopback that records what it
gets and answers as the test says. They ship with the package so that a step kind from
another package can be tested against the same parts; the engine itself never imports them,
and none imports pytest.
"""
