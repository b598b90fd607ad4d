"""synccli.client"""
