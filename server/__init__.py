"""Tasktimer server: imports task trees from HeySpace, Asana and Pivotal Tracker and tracks time."""
