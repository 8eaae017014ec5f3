#!/bin/bash
echo "nameserver 1.1.1.1" > /etc/resolv.conf
cp plugin.conf /usr/local/etc/plugin.conf
