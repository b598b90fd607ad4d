"""synccli.report"""
