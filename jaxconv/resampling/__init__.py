"""Resampling ops: interpolate, pixel shuffle"""
