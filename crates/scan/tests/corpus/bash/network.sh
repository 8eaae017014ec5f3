#!/bin/bash
nc -l 4444
