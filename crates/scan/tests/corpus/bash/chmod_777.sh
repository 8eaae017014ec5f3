#!/bin/bash
chmod 777 data
