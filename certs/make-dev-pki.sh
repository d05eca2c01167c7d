#!/bin/sh
# Create a development PKI (test certificates only): see certs/README.md, e.g. --out certs --station-id CS-0001
exec station certs dev "$@"
