#!/bin/sh
# Developer check: the default and the sanitizer test runs, each with its closing line.
make -s test >/tmp/bd-check.log 2>&1; a=$?
make -s test SAN=1 >/tmp/bd-check-san.log 2>&1; b=$?
echo "default: exit $a: $(tail -n 1 /tmp/bd-check.log)"
echo "SAN=1:   exit $b: $(tail -n 1 /tmp/bd-check-san.log)"
[ $a = 0 ] && [ $b = 0 ]
