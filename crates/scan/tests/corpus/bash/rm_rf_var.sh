#!/bin/bash
rm -rf "$BUILD_DIR/"
