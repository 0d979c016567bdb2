"""Candidates -> final detections: score threshold, NMS, WIDER prediction trees and landmarks."""
